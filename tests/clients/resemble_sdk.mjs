// Resemble's own Node SDK (@resemble/node, pinned in package.json), used as its README shows, against sleuth:
// only the base URL and the key differ. Prints one JSON object: every call's return value, by name.
//
// env: SLEUTH_BASE (the SDK's base URL, e.g. http://127.0.0.1:PORT/api/), SLEUTH_KEY, SCENARIO (full | short),
//      AUDIO / IMAGE / VIDEO (local paths), MEDIA_URL (an http base serving the same files by name).
import { Resemble } from '@resemble/node'
import path from 'node:path'

Resemble.setBaseUrl(process.env.SLEUTH_BASE)
Resemble.setApiKey(process.env.SLEUTH_KEY)
const detection = Resemble.v2.detection
const out = {}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// poll with the SDK's own get until the detect settles (what detectAndGet does, with a longer budget)
async function settle(uuid) {
  let res
  for (let i = 0; i < 600; i++) {
    res = await detection.get(uuid)
    if (!res.success || ['completed', 'failed'].includes(res.item?.status)) return res
    await sleep(250)
  }
  return res
}

const media = {
  audio: { file: process.env.AUDIO, opts: { frame_length: 2, visualize: true } },
  image: { file: process.env.IMAGE, opts: { visualize: true } },
  video: { file: process.env.VIDEO, opts: { max_video_secs: 2, frame_length: 1, visualize: true } },
}

if (process.env.SCENARIO === 'short') {
  const m = media.audio
  out['audio.secureUpload'] = await detection.secureUpload(m.file)
  out['audio.createSync'] = await detection.createSync({ file: m.file, ...m.opts })
  if (out['audio.createSync'].success) out['audio.get'] = await detection.get(out['audio.createSync'].item.uuid)
} else {
  for (const [kind, m] of Object.entries(media)) {
    out[`${kind}.secureUpload`] = await detection.secureUpload(m.file)
    out[`${kind}.create_file`] = await detection.create({ file: m.file, ...m.opts })
    out[`${kind}.create_url`] = await detection.create({
      url: `${process.env.MEDIA_URL}/${path.basename(m.file)}`,
      ...m.opts,
    })
    out[`${kind}.createSync`] = await detection.createSync({ file: m.file, ...m.opts })
    out[`${kind}.detectAndGet`] = await detection.detectAndGet({ file: m.file, ...m.opts }, 240, 0.5)
    for (const how of ['file', 'url']) {
      const created = out[`${kind}.create_${how}`]
      if (created.success) out[`${kind}.get_${how}`] = await settle(created.item.uuid)
    }
  }
  out['error.get_unknown'] = await detection.get('00000000-0000-0000-0000-000000000000')
  Resemble.setApiKey('sk_sleuth_not-a-key')
  out['error.get_bad_key'] = await detection.get('00000000-0000-0000-0000-000000000000')
  out['error.secureUpload_bad_key'] = await detection.secureUpload(media.audio.file)
}
console.log(JSON.stringify(out))
