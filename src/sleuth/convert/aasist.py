"""Build-time: our PyTorch definition of AASIST / AASIST-L, and its export to ONNX.

AASIST (Jung et al., ICASSP 2022; checkpoints from ``clovaai/aasist``, MIT) scores one
64600-sample window of 16 kHz mono audio. Network, in order:

1. a *fixed* sinc band-pass filterbank (70 mel-spaced filters x 129 taps, not learned and
   not stored in the checkpoint; see :func:`sinc_filterbank`), then ``|x|``, a 3x3 max-pool,
   a 1-channel BatchNorm and SELU, giving a (1, 23, 21490) "spectro-temporal image";
2. six residual 2-D conv blocks (each ends with a (1, 3) max-pool) -> (C, 23, 29);
3. a spectral graph (23 nodes: max |.| over time, plus a learned positional embedding)
   and a temporal graph (29 nodes: max |.| over frequency), each through a graph-attention
   layer and a top-k graph pool;
4. two parallel branches of heterogeneous stacking graph attention (HS-GAL) over the
   union of both graphs plus a learned master node, with graph pools in between;
5. max-graph-operation: element-wise max of the two branches; readout =
   [max |T|, mean T, max |S|, mean S, master] (the 160-d embedding for AASIST) -> Linear -> 2
   logits, index 0 = spoof, index 1 = bona fide.

torch is imported lazily: serving never imports this module's torch parts.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from sleuth.convert.onnx_export import trace_to_onnx

#: Helper modules whose code shapes this converter's output (the catalog re-converts when they change).
FINGERPRINT_MODULES = ("sleuth.convert.onnx_export",)

NB_SAMP = 64600
SAMPLE_RATE = 16000
OPSET = 17

# Hyper-parameters (values of ``model_config`` in the upstream AASIST.conf / AASIST-L.conf).
AASIST_CONFIGS: dict[str, dict[str, Any]] = {
    "AASIST": {
        "first_conv": 128,
        "filts": [70, [1, 32], [32, 32], [32, 64], [64, 64]],
        "gat_dims": [64, 32],
        "pool_ratios": [0.5, 0.7, 0.5, 0.5],
        "temperatures": [2.0, 2.0, 100.0, 100.0],
    },
    "AASIST-L": {
        "first_conv": 128,
        "filts": [70, [1, 32], [32, 32], [32, 24], [24, 24]],
        "gat_dims": [24, 32],
        "pool_ratios": [0.4, 0.5, 0.7, 0.5],
        "temperatures": [2.0, 2.0, 100.0, 100.0],
    },
}


def sinc_filterbank(
    n_filters: int = 70, kernel_size: int = 128, sample_rate: int = SAMPLE_RATE, nfft: int = 512
) -> np.ndarray:
    """The fixed first layer of AASIST and RawGAT-ST: ``(n_filters, taps)`` float32.

    Recipe (SincNet-style, non-learned): an even ``kernel_size`` is made odd (128 -> 129
    taps). Band edges are ``n_filters + 1`` points equally spaced on the mel scale
    (``mel = 2595 log10(1 + f/700)``) between the mel values of 0 Hz and Nyquist (taken
    from an ``nfft/2 + 1``-point linear frequency grid). Filter ``i`` is the ideal band-pass
    ``2 f_hi/sr sinc(2 f_hi n/sr) - 2 f_lo/sr sinc(2 f_lo n/sr)`` for tap offsets
    ``n = -(taps-1)/2 .. (taps-1)/2``, multiplied by a Hamming window.

    To be bit-faithful to the upstream float32 arithmetic, the sinc argument and the sinc
    itself are evaluated in float32, the band scaling and difference in float64, and the
    windowed product in float32.
    """
    taps = kernel_size + 1 if kernel_size % 2 == 0 else kernel_size
    half = (taps - 1) / 2
    grid_hz = (sample_rate // 2) * np.linspace(0.0, 1.0, nfft // 2 + 1)
    grid_mel = 2595.0 * np.log10(1.0 + grid_hz / 700.0)
    edges_mel = np.linspace(grid_mel.min(), grid_mel.max(), n_filters + 1)
    edges_hz = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    offsets = np.arange(-half, half + 1, dtype=np.float32)
    window = np.hamming(taps).astype(np.float32)

    def ideal_lowpass(cut_hz: float) -> np.ndarray:
        arg = (np.float32(2.0 * cut_hz) * offsets) / np.float32(sample_rate)  # float32
        return (2.0 * cut_hz / sample_rate) * np.sinc(arg).astype(np.float64)

    bank = np.empty((n_filters, taps), dtype=np.float32)
    for i in range(n_filters):
        band = ideal_lowpass(float(edges_hz[i + 1])) - ideal_lowpass(float(edges_hz[i]))
        bank[i] = window * band.astype(np.float32)
    return bank


def sha256_float32le(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------
# torch building blocks (shared with sleuth.convert.rawgat), defined on first use.
# ---------------------------------------------------------------------------------------


@functools.cache
def torch_blocks() -> SimpleNamespace:
    """Define the torch modules (imports torch). Returns a namespace of classes."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SincFrontEnd(nn.Module):
        """Fixed sinc filterbank -> |.| -> 3x3 max-pool -> BatchNorm2d(1) -> SELU.

        The filterbank is a non-persistent buffer (it is not in the checkpoints);
        ``first_bn`` is owned by the parent model to keep the checkpoint's key names.
        """

        def __init__(self, n_filters: int, kernel_size: int) -> None:
            super().__init__()
            bank = torch.from_numpy(sinc_filterbank(n_filters, kernel_size))
            self.register_buffer("bank", bank.unsqueeze(1), persistent=False)

        def forward(self, wave: torch.Tensor) -> torch.Tensor:
            bank: torch.Tensor = self.bank  # type: ignore[assignment]
            y = F.conv1d(wave.unsqueeze(1), bank)  # (B, F, L - taps + 1)
            return F.max_pool2d(y.abs().unsqueeze(1), kernel_size=3)  # (B, 1, F/3, L'/3)

    class ResBlock(nn.Module):
        """2-D residual block: conv(2x3) -> BN -> SELU -> conv(2x3) (+ shortcut) -> maxpool(1x3).

        The checkpoints carry a pre-activation ``bn1`` on non-first blocks (and RawGAT-ST an
        extra 1-channel ``conv_1`` on every block), but the upstream forward pass feeds
        the block input straight into the first convolution, so those tensors are loaded
        (strict key match) and bypassed here too. ``entry`` names the convolution that is
        actually used first: ``conv1`` (C_in -> C_out) or ``conv_1`` (1 -> C_out).
        """

        def __init__(self, c_in: int, c_out: int, first: bool, rawgat: bool = False) -> None:
            super().__init__()
            self.use_conv_1 = rawgat and first
            if not first:
                self.bn1 = nn.BatchNorm2d(c_in)  # unused (see docstring)
            if not (rawgat and first):
                self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=(2, 3), padding=(1, 1))
            if rawgat:
                self.conv_1 = nn.Conv2d(1, c_out, kernel_size=(2, 3), padding=(1, 1))
            self.bn2 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=(2, 3), padding=(0, 1))
            self.has_shortcut_conv = c_in != c_out
            if self.has_shortcut_conv:
                self.conv_downsample = nn.Conv2d(c_in, c_out, kernel_size=(1, 3), padding=(0, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv_1(x) if self.use_conv_1 else self.conv1(x)
            h = self.conv2(F.selu(self.bn2(h)))
            skip = self.conv_downsample(x) if self.has_shortcut_conv else x  # may broadcast 1 -> C
            return F.max_pool2d(h + skip, kernel_size=(1, 3))

    def _batchnorm_last(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
        return bn(x.transpose(1, 2)).transpose(1, 2)

    def _pair_products(x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(2) * x.unsqueeze(1)  # (B, N, N, D): x_i * x_j

    class GraphAttention(nn.Module):
        """Graph attention over a fully connected graph of N nodes.

        e_ij = w . tanh(A (x_i * x_j)) / temperature; a_ij = softmax_j(e_ij);
        out_i = SELU(BN(W1 sum_j a_ij x_j + W2 x_i)).
        """

        def __init__(self, d_in: int, d_out: int, temperature: float = 1.0) -> None:
            super().__init__()
            self.att_proj = nn.Linear(d_in, d_out)
            self.att_weight = nn.Parameter(torch.zeros(d_out, 1))
            self.proj_with_att = nn.Linear(d_in, d_out)
            self.proj_without_att = nn.Linear(d_in, d_out)
            self.bn = nn.BatchNorm1d(d_out)
            self.temperature = float(temperature)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            e = torch.tanh(self.att_proj(_pair_products(x))) @ self.att_weight  # (B, N, N, 1)
            a = torch.softmax(e.squeeze(-1) / self.temperature, dim=2)
            h = self.proj_with_att(a @ x) + self.proj_without_att(x)
            return F.selu(_batchnorm_last(self.bn, h))

    class HeteroGraphAttention(nn.Module):
        """HS-GAL: attention over the union of two node types plus a master (stack) node.

        Both node sets are first projected per type, then concatenated. Edge scores use
        ``att_weight11`` within type 1, ``att_weight22`` within type 2 and ``att_weight12``
        across types; the master node attends to every node with ``att_weightM``.
        """

        def __init__(self, d_in: int, d_out: int, temperature: float = 1.0) -> None:
            super().__init__()
            self.proj_type1 = nn.Linear(d_in, d_in)
            self.proj_type2 = nn.Linear(d_in, d_in)
            self.att_proj = nn.Linear(d_in, d_out)
            self.att_projM = nn.Linear(d_in, d_out)
            self.att_weight11 = nn.Parameter(torch.zeros(d_out, 1))
            self.att_weight22 = nn.Parameter(torch.zeros(d_out, 1))
            self.att_weight12 = nn.Parameter(torch.zeros(d_out, 1))
            self.att_weightM = nn.Parameter(torch.zeros(d_out, 1))
            self.proj_with_att = nn.Linear(d_in, d_out)
            self.proj_without_att = nn.Linear(d_in, d_out)
            self.proj_with_attM = nn.Linear(d_in, d_out)
            self.proj_without_attM = nn.Linear(d_in, d_out)
            self.bn = nn.BatchNorm1d(d_out)
            self.temperature = float(temperature)

        def forward(
            self, x1: torch.Tensor, x2: torch.Tensor, master: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            n1, n2 = x1.shape[1], x2.shape[1]
            x = torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1)  # (B, N, D)
            hidden = torch.tanh(self.att_proj(_pair_products(x)))  # (B, N, N, d_out)
            weights = torch.cat([self.att_weight11, self.att_weight22, self.att_weight12], dim=1)
            scores = hidden @ weights  # (B, N, N, 3): the three candidate edge scores
            is_t1 = torch.arange(n1 + n2, device=x.device) < n1
            same1 = is_t1.unsqueeze(1) & is_t1.unsqueeze(0)
            same2 = (~is_t1).unsqueeze(1) & (~is_t1).unsqueeze(0)
            e = torch.where(same1, scores[..., 0], torch.where(same2, scores[..., 1], scores[..., 2]))
            a = torch.softmax(e / self.temperature, dim=2)  # (B, N, N)

            em = torch.tanh(self.att_projM(x * master)) @ self.att_weightM  # (B, N, 1)
            am = torch.softmax(em / self.temperature, dim=1)
            pooled = (am * x).sum(dim=1, keepdim=True)  # (B, 1, D)
            new_master = self.proj_with_attM(pooled) + self.proj_without_attM(master)

            h = self.proj_with_att(a @ x) + self.proj_without_att(x)
            h = F.selu(_batchnorm_last(self.bn, h))
            return h[:, :n1], h[:, n1:], new_master

    class GraphPool(nn.Module):
        """Keep the top-k nodes by a learned sigmoid gate; kept nodes are scaled by the gate.

        k = max(int(N * ratio), min_nodes); nodes come out in descending gate order.
        """

        def __init__(self, ratio: float, d: int, min_nodes: int = 1) -> None:
            super().__init__()
            self.ratio = ratio
            self.min_nodes = min_nodes
            self.proj = nn.Linear(d, 1)

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            gate = torch.sigmoid(self.proj(h))  # (B, N, 1)
            k = max(int(h.shape[1] * self.ratio), self.min_nodes)
            _, idx = torch.topk(gate, k, dim=1)
            return torch.gather(h * gate, 1, idx.expand(-1, -1, h.shape[2]))

    class Aasist(nn.Module):
        """AASIST / AASIST-L. ``forward(wave (B, 64600)) -> (logits (B, 2), embedding (B, 160))``."""

        def __init__(self, cfg: Mapping[str, Any]) -> None:
            super().__init__()
            filts = cfg["filts"]
            g0, g1 = cfg["gat_dims"]
            r = cfg["pool_ratios"]
            t = cfg["temperatures"]
            c_last = filts[-1][-1]
            self.front = SincFrontEnd(filts[0], cfg["first_conv"])
            self.first_bn = nn.BatchNorm2d(1)
            specs = [filts[1], filts[2], filts[3], filts[4], filts[4], filts[4]]
            self.encoder = nn.Sequential(
                *[nn.Sequential(ResBlock(c_in, c_out, first=(i == 0))) for i, (c_in, c_out) in enumerate(specs)]
            )
            n_spectral = filts[0] // 3  # 70 sinc bands -> 23 after the 3x3 max-pool
            self.pos_S = nn.Parameter(torch.zeros(1, n_spectral, c_last))
            self.master1 = nn.Parameter(torch.zeros(1, 1, g0))
            self.master2 = nn.Parameter(torch.zeros(1, 1, g0))
            self.GAT_layer_S = GraphAttention(c_last, g0, t[0])
            self.GAT_layer_T = GraphAttention(c_last, g0, t[1])
            self.HtrgGAT_layer_ST11 = HeteroGraphAttention(g0, g1, t[2])
            self.HtrgGAT_layer_ST12 = HeteroGraphAttention(g1, g1, t[2])
            self.HtrgGAT_layer_ST21 = HeteroGraphAttention(g0, g1, t[2])
            self.HtrgGAT_layer_ST22 = HeteroGraphAttention(g1, g1, t[2])
            self.pool_S = GraphPool(r[0], g0)
            self.pool_T = GraphPool(r[1], g0)
            self.pool_hS1 = GraphPool(r[2], g1)
            self.pool_hT1 = GraphPool(r[2], g1)
            self.pool_hS2 = GraphPool(r[2], g1)
            self.pool_hT2 = GraphPool(r[2], g1)
            self.out_layer = nn.Linear(5 * g1, 2)

        def _branch(
            self,
            first: nn.Module,
            second: nn.Module,
            pool_s: nn.Module,
            pool_t: nn.Module,
            t_nodes: torch.Tensor,
            s_nodes: torch.Tensor,
            master: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            t1, s1, m1 = first(t_nodes, s_nodes, master)
            t1, s1 = pool_t(t1), pool_s(s1)
            t2, s2, m2 = second(t1, s1, m1)
            return t1 + t2, s1 + s2, m1 + m2

        def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = F.selu(self.first_bn(self.front(wave)))
            mag = self.encoder(x).abs()  # (B, C, 23, 29)
            s_nodes = mag.amax(dim=3).transpose(1, 2) + self.pos_S  # (B, 23, C)
            t_nodes = mag.amax(dim=2).transpose(1, 2)  # (B, 29, C)
            s_nodes = self.pool_S(self.GAT_layer_S(s_nodes))
            t_nodes = self.pool_T(self.GAT_layer_T(t_nodes))
            ta, sa, ma = self._branch(
                self.HtrgGAT_layer_ST11,
                self.HtrgGAT_layer_ST12,
                self.pool_hS1,
                self.pool_hT1,
                t_nodes,
                s_nodes,
                self.master1,
            )
            tb, sb, mb = self._branch(
                self.HtrgGAT_layer_ST21,
                self.HtrgGAT_layer_ST22,
                self.pool_hS2,
                self.pool_hT2,
                t_nodes,
                s_nodes,
                self.master2,
            )
            t_all, s_all, m_all = torch.maximum(ta, tb), torch.maximum(sa, sb), torch.maximum(ma, mb)
            embedding = torch.cat(
                [
                    t_all.abs().amax(dim=1),
                    t_all.mean(dim=1),
                    s_all.abs().amax(dim=1),
                    s_all.mean(dim=1),
                    m_all.squeeze(1),
                ],
                dim=1,
            )
            return self.out_layer(embedding), embedding

    return SimpleNamespace(
        SincFrontEnd=SincFrontEnd,
        ResBlock=ResBlock,
        GraphAttention=GraphAttention,
        HeteroGraphAttention=HeteroGraphAttention,
        GraphPool=GraphPool,
        Aasist=Aasist,
    )


def load_state_dict(path: str | Path) -> dict[str, Any]:
    import torch

    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: not a state dict")
    return {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def variant_of(state_dict: Mapping[str, Any]) -> str:
    """Which AASIST variant a checkpoint is, from its tensor shapes."""
    for name, cfg in AASIST_CONFIGS.items():
        g0 = cfg["gat_dims"][0]
        c_last = cfg["filts"][-1][-1]
        m = state_dict.get("master1")
        p = state_dict.get("pos_S")
        if m is not None and p is not None and tuple(m.shape) == (1, 1, g0) and p.shape[-1] == c_last:
            return name
    raise ValueError("checkpoint matches neither AASIST nor AASIST-L")


def build_torch_model(weights: str | Path, variant: str | None = None) -> Any:
    """Our torch AASIST with the checkpoint loaded (strict), in eval mode."""
    sd = load_state_dict(weights)
    name = variant or variant_of(sd)
    model = torch_blocks().Aasist(AASIST_CONFIGS[name])
    model.load_state_dict(sd, strict=True)
    return model.eval()


def export_onnx(model: Any, out_path: Path, embedding_name: str = "embedding") -> Path:
    """Export ``wave (B, 64600) -> logits (B, 2), embedding`` with a dynamic batch axis."""
    import torch

    return trace_to_onnx(
        model,
        torch.zeros(2, NB_SAMP, dtype=torch.float32),
        out_path,
        input_names=["wave"],
        output_names=["logits", embedding_name],
        dynamic_axes={"wave": {0: "batch"}, "logits": {0: "batch"}, embedding_name: {0: "batch"}},
        opset=OPSET,
    )


def convert(artefacts: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    """Catalog converter for ``aasist`` and ``aasist-l``: ``weights`` (.pth) -> ``model.onnx``.

    The variant (AASIST or AASIST-L) is recognised from the checkpoint's tensor shapes.
    """
    model = build_torch_model(artefacts["weights"])
    return {"onnx": export_onnx(model, Path(out_dir) / "model.onnx")}
