// The seed page's JavaScript example, unchanged except for the URL (and the key, read from the
// same environment variable the seed uses). firstFile/secondFile are the two images to send.
import { openAsBlob } from 'node:fs'

const firstFile = await openAsBlob(process.env.FIRST_FILE, { type: 'image/jpeg' })
const secondFile = await openAsBlob(process.env.SECOND_FILE, { type: 'image/jpeg' })

const form = new FormData()
form.append('images', firstFile)
form.append('images', secondFile)
form.append('country', 'USA')
form.append('threshold', '0.2')
form.append('classify', 'true')
form.append('smooth_herd', 'true')
form.append('latitude', '56.834')
form.append('longitude', '9.994')
form.append('metadata', 'true')
const response = await fetch(process.env.SLEUTH_URL + '/v1/batch-detect', {
method: 'POST',
headers: {
Authorization: 'Bearer ' + process.env.ANIMAL_DETECT_API_KEY,
},
body: form,
})
const data = await response.json()

console.log(JSON.stringify({ status: response.status, data }))
