"""Frame pooling: the windows of a long recording (AVA-Speech: 1-s windows at a 10-ms hop) embedded from
frame features computed once per recording, instead of running every window through the encoder.

Per-window embedding (each window's span through `StoreModel.embed`: its own log-mel, normalised, the
encoder, max + mean over its frames) is the reference. Frame pooling is allowed only within tolerance
(issue 8): cosine distance to per-window <= `TOLERANCE` for every window, probe AP within `AP_TOLERANCE`
(both checked on the AVA fixture by tests/featurestore/test_frames.py; `check` repeats the first on a
sample of the dataset before `--pooling auto` uses it).

How frames line up (BYOL-A front end: hop 160 = 10 ms, so a window start on the 10-ms grid is a log-mel frame
index s exactly; other rows go per-window, see `eligible`):
- the encoder's B 2x2 max-pools (v2 B = 2, v1 B = 3) make each output frame one block of 2**B log-mel
  frames (v2 40 ms, v1 80 ms); a window's K = n >> B output frames (n = 101 log-mel frames for 1 s: v2 25,
  v1 12) are the blocks at s, s + 2**B, ..., s + 2**B (K - 1). One block grid over the recording would fit
  only starts divisible by 2**B, and snapping the others moves them by up to 20 ms (v2); instead every
  block phase is computed (`frame_features`): block b's conv runs once per phase of the blocks below and its
  pool at both offsets, so the 2**B phases share the lower blocks' work and the recording gets one output
  frame per 10 ms (row g: the block starting at log-mel frame g). That is one MLP frame and ~2 conv frames per
  10 ms, against each window's K MLP frames and 101 log-mel frames through the convs.
- edges: a window's own log-mel reflect-pads at its edges (frames 0-3 and 97-100 of 101) and its convs
  zero-pad there, where the recording has real neighbours. Rows whose receptive field (v2: log-mel
  s + 4k - 3 ... s + 4k + 6) lies in frames 4-96 equal per-window's exactly (v2 k = 2..22 of 25, v1 k =
  2..10 of 12), but the edge frames are where per-window's max lands in most dimensions (the padding makes
  strong responses: in 119 of the 192 dimensions of the demo's trained `all` run, in the first two frames),
  so recording rows alone are too far from per-window. Measured on the 26 AVA-like movies the demo had then (2,652
  windows), max cosine distance with recording rows only: v2 random 0.036, v1 random 0.012, tiny random
  0.023, the demo's trained tiny runs 0.06-0.12. So the first and last `edges` output frames of each
  window are computed from its own samples (`_edge_frames`: a 7-frame head and an 8-frame tail of log-mel
  for v2, 15 and 20 for v1, through convs that pad only at the window's end; of those log-mel frames only
  the 4 at each end that the window's reflect padding reaches come from its own STFT, the others are the
  recording's, which equal them), and only the interior comes from the recording. With edges = 1 (the
  default): max 0.0014 (v2 random; 0.0049 on the bench's synthetic recording), 0.0002 (v1 random), 0.0009
  (tiny random), 0.0012 and 0.0009 (trained runs); probe AP
  (analysis.probe, paper protocol, 10 epochs, seeds 0-2) within 0.005 of per-window for every seed, seed
  means within 0.0021 (one seed's AP can move more from probe noise alone: 0.0066 on the fixture for
  inputs 5e-5 apart; the tests compare seed means and a convex probe, sklearn's LogisticRegression). With
  edges = 2 every frame is per-window's own (equal to float rounding, tested). The edges bound the
  speed-up: each window still costs 2 * edges MLP frames and ~4 conv frames of its own, so v2 at full
  width gains ~25 / (1 + 2) = 8x at most in MLP work (bench/frames_bench.py, 10 min, one thread, CPU time:
  1,259 windows/s against per-window's 212, 5.9x; recording rows alone 4,408/s, 20.8x). What is left per
  window is mostly its own: 2 MLP frames (~0.2 ms), the edge convs (~0.25 ms: the second block at ~80
  GFLOP/s, the first bound by memory) and 16 STFT frames (~0.07 ms); the recording's rows ~0.17 ms.
- a window pools its K frames (head, interior rows s + 2**B k, tail) as the reference does (amax + mean
  over the K frames): the max exactly, the sum in another order (float rounding): windows on one block phase
  share all but one interior row with their neighbour, so the interior's max and sum are sliding reductions
  over the rows (`_interior_max_sum`) instead of per-window gathers.

Streaming and memory: one recording (a clip of the shard) at a time; its eligible windows, sorted by start,
are cut into groups whose rows span at most `GROUP_FRAMES` (41 s; a new group also starts at a gap wider
than two halos, so sparse windows never compute the audio between them). Each group's log-mel (read with
`HALO_BLOCKS` blocks and the STFT's half window of context either side; reflect padding only at the
recording's own ends) goes through the convs and the MLP once, and its rows are exactly what the whole
recording would give, so grouping never changes a result. Peak memory is one group: v2 at full width
~4,100 rows x 3,072 floats (50 MB) plus the first block's activations (64 channels x 64 mels x 4,100 frames,
67 MB, a few copies), whatever the recording's length: a 15-min movie's 90,000 rows (1.1 GB) are never held.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.nn.functional as F

from featurestore.audio import SAMPLES_PER_MS, ShardAudio
from featurestore.models import StoreModel
from shards.frontend import BYOLA, FrontEnd, LogMel
from training.models import folded_blocks, pool_relu

log = logging.getLogger(__name__)

TOLERANCE = 0.01  # issue 8: max cosine distance to per-window a model may show for frame pooling to be used
AP_TOLERANCE = 0.005  # issue 8: probe AP difference to per-window on the fixture (checked by the tests)
EDGE_FRAMES = 1  # output frames at each end of a window computed from its own samples (docstring: 0 fails)
GROUP_FRAMES = 4096  # rows (10-ms log-mel frames, 41 s) computed at once: the memory bound (docstring)
HALO_BLOCKS = 2  # blocks of context either side of a group: > the receptive field (v2 3 frames, v1 7 frames)
POOL_WINDOWS = 2048  # windows whose interior frames are accumulated together (v2: 3 x 2048 x 3,072 floats, 75 MB)
SLIDE_ROWS = 512  # rows whose sliding max and sum run at once (`_interior_max_sum`; 256-1,024 alike, 2,048 up slower)
EDGE_WINDOWS = 512  # windows whose edge frames are computed together (v2: 512 x 64 x 64 x 8 floats, 67 MB)
EDGE_CONV_WINDOWS = 32  # windows per edge conv call: the first block's activations stay cache-sized (_edge_convs)
EDGE_SPANS_PER_CALL = 64  # edge spans per front-end FFT + filterbank call (LogMel's default 8 is for 1-s crops)
CHECK_WINDOWS = 64  # windows of a dataset compared with per-window before `auto` picks frame pooling
CHECK_SEED = 0


@dataclass(frozen=True, slots=True)
class PoolingCheck:
    """Frame pooling against per-window on a seeded sample of a dataset's windows (recorded in the lineage)."""

    windows: int
    max_distance: float
    mean_distance: float
    tolerance: float = TOLERANCE

    @property
    def passed(self) -> bool:
        return self.max_distance <= self.tolerance

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def description() -> dict:
    """What frame pooling adds to a model's fingerprint (`featurestore.models`): bump `version` whenever the
    computation changes what it stores."""
    return {"pooling": "frames", "edges": EDGE_FRAMES, "phases": "all", "version": 1}


def modes(requested: str, model: StoreModel, windowed: bool) -> tuple[str, ...]:
    """The poolings an embed run may store for (model, dataset), preferred first: `windows` (the reference)
    for file datasets and models without frames to pool; `frames` asked for is refused for the latter;
    `auto` prefers frames where `check` passes."""
    if requested == "frames" and not supports(model):
        raise ValueError(f"model {model.spec.id!r}: --pooling frames needs a BYOL-A encoder ({model.kind} embeds "
                         "each window from its own audio); use --pooling auto or windows")
    if requested == "windows" or not windowed or not supports(model):
        return ("windows",)
    return ("frames",) if requested == "frames" else ("frames", "windows")


def sample(items: pa.Table, fe: FrontEnd = BYOLA) -> pa.Table:
    """The seeded sample of eligible windows `check` compares (CHECK_WINDOWS, in row order)."""
    ok = np.flatnonzero(eligible(items, fe))
    pick = np.random.default_rng(CHECK_SEED).choice(ok, min(CHECK_WINDOWS, len(ok)), replace=False)
    return items.take(pa.array(np.sort(pick), pa.int64()))


def check(model: StoreModel, batches: Iterable[tuple[ShardAudio, pa.Table]]) -> PoolingCheck:
    """Frame pooling against per-window on (shard audio, rows) batches, e.g. a dataset's `sample` by shard."""
    distances = np.concatenate([compare(model, audio, rows) for audio, rows in batches] or [np.zeros(0)])
    if not len(distances):
        return PoolingCheck(0, 0.0, 0.0, TOLERANCE)
    return PoolingCheck(len(distances), float(distances.max()), float(distances.mean()), TOLERANCE)


def supports(model: StoreModel) -> bool:
    """Frame pooling needs a BYOL-A encoder (conv blocks + per-frame MLP); YAMNet and WavLM stay per-window."""
    return model.front_end is not None and hasattr(model.network, "features")


def front_end(model: StoreModel) -> FrontEnd:
    return FrontEnd(**model.front_end) if model.front_end else BYOLA


def hop_ms(fe: FrontEnd) -> int:
    """The log-mel hop in ms (BYOL-A: 10); window starts and lengths on this grid map to frame indices."""
    ms = fe.hop_length * 1000 / fe.sample_rate
    if fe.sample_rate != 1000 * SAMPLES_PER_MS or ms != int(ms):
        raise ValueError(f"front end hop {fe.hop_length} at {fe.sample_rate} Hz: frame pooling needs 16 kHz and "
                         "a whole number of ms per hop")
    return int(ms)


def eligible(items: pa.Table, fe: FrontEnd = BYOLA) -> np.ndarray:
    """Rows frame pooling computes: windows (key != clip) starting and ending on the hop grid, at least
    1 s long (shorter items are zero-padded to 1 s by the reference, which a recording's frames are not)."""
    step = hop_ms(fe)
    start = items["start_ms"].to_numpy(zero_copy_only=False)
    length = items["duration_ms"].to_numpy(zero_copy_only=False)
    window = pc.not_equal(items["key"], items["clip"]).to_numpy(zero_copy_only=False)
    return window & (start % step == 0) & (length % step == 0) & (length >= 1000) & (start >= 0)


def _head(network: torch.nn.Module, conv: torch.Tensor) -> torch.Tensor:
    """(..., channels, mels', T') conv output -> (..., T', D): flattened channel fastest, MLP, v2's concat
    (as `training.models.Encoder.frames`)."""
    z = conv.transpose(-1, -3).flatten(-2)
    out = network.fc(z)
    return torch.cat([z, out], dim=-1) if network.cfg.arch == "v2" else out


def _edge_convs(blocks: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor, side: str) -> torch.Tensor:
    """The conv blocks (`folded_blocks`) on (W, 1, mels, frames) taken from one end of windows: zero padding in
    time only at that end (the window's own edge, as per-window pads it), none at the cut, so every output is
    exact. On CPU EDGE_CONV_WINDOWS windows at a time: the first block's activations of 512 v2 heads (512 x 64
    x 64 x 6 floats, 50 MB) went through memory twice (conv, pool) at ~4 GFLOP/s; 32 at a time the convs run
    ~2x faster (one thread, v2 112 -> 58 ms per 512 heads, v1 278 -> 122 ms), bit for bit the same. Laying
    the windows side by side along time for one long conv per block (each span led by its zero column) was
    slower (v2 heads: 178 ms whole, 81-85 ms in chunks of 16-64): the second block's conv gained nothing from
    the long time extent (35 vs 33 ms per 512) and computes junk columns between spans (2 of every 4)."""
    pad = (1, 0) if side == "head" else (0, 1)
    chunk = EDGE_CONV_WINDOWS if x.device.type == "cpu" else max(len(x), 1)
    out = []
    for begin in range(0, len(x), chunk):
        y = x[begin: begin + chunk]
        for weight, bias in blocks:
            y = pool_relu(F.conv2d(F.pad(y, pad), weight, bias, padding=(1, 0)))
        out.append(y)
    return torch.cat(out)


def frame_features(network: torch.nn.Module, x: torch.Tensor,
                   blocks: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
    """(n_mels, T) normalised log-mel -> (T - 2**B + 1, D) features: row g is the encoder's output frame for
    the block of 2**B log-mel frames starting at frame g, over every block phase (module docstring). `blocks`:
    the network's `folded_blocks` when the caller keeps them (computed here otherwise)."""
    cfg = network.cfg
    if x.dim() != 2 or x.shape[0] != cfg.n_mels or x.shape[1] < 2 ** (cfg.blocks + 1):
        raise ValueError(f"log-mel shape {tuple(x.shape)}, expected ({cfg.n_mels}, >= {2 ** (cfg.blocks + 1)})")
    streams = [(0, x[None])]  # (phase in log-mel frames, (channels, mels, frames))
    with torch.no_grad():
        for block, (weight, bias) in enumerate(blocks or folded_blocks(network)):
            lengths = [s.shape[-1] for _, s in streams]
            longest = max(lengths)  # zero columns appended: the conv pads with zeros there anyway
            batch = torch.stack([F.pad(s, (0, longest - s.shape[-1])) for _, s in streams])
            out = F.conv2d(batch, weight, bias, padding=1)
            streams = [(phase + offset * 2 ** block, pool_relu(y[..., offset:n]))
                       for (phase, _), n, y in zip(streams, lengths, out) for offset in (0, 1)]
        features = _head(network, torch.cat([s for _, s in streams], dim=-1))
        step = 2 ** cfg.blocks
        rows = torch.cat([phase + step * torch.arange(s.shape[-1], device=x.device) for phase, s in streams])
        out = torch.empty((x.shape[1] - step + 1, features.shape[-1]), dtype=features.dtype, device=x.device)
        out[rows] = features
        return out


def _groups(first: np.ndarray, last: np.ndarray, halo: int) -> list[np.ndarray]:
    """Windows (sorted by first row) cut into groups of rows spanning <= GROUP_FRAMES, split at wide gaps."""
    groups, begin, lo, hi = [], 0, int(first[0]), int(last[0])
    for i in range(1, len(first)):
        if first[i] > hi + 2 * halo or max(hi, int(last[i])) - lo >= GROUP_FRAMES:
            groups.append(np.arange(begin, i))
            begin, lo, hi = i, int(first[i]), int(last[i])
        else:
            hi = max(hi, int(last[i]))
    groups.append(np.arange(begin, len(first)))
    return groups


@dataclass(frozen=True, slots=True)
class Recording:
    """The windows of one recording to pool; `read(first, count)` returns its samples first ... first + count - 1
    (float32, zero-padded past its end, as the reference's spans are)."""

    read: Callable[[int, int], np.ndarray]
    samples: int  # the recording's length (windows running past it see zeros)
    start_ms: np.ndarray  # int64, on the hop grid
    duration_ms: np.ndarray  # int64, on the hop grid, >= 1000
    rows: np.ndarray  # the output row of each window


class FramePooler:
    """One model's frame pooling (module docstring); holds its log-mel front end on the model's device.
    `edges` output frames at each end of a window come from the window's own samples (0: recording rows
    only, outside the tolerance; kept for the bench and tests)."""

    def __init__(self, model: StoreModel, edges: int = EDGE_FRAMES):
        if not supports(model):
            raise ValueError(f"model {model.name!r} ({model.kind}): frame pooling needs a BYOL-A encoder")
        if edges < 0:
            raise ValueError(f"edges={edges} must be >= 0")
        self.model, self.fe, self.edges = model, front_end(model), edges
        self.hop_ms = hop_ms(self.fe)
        self.blocks = model.network.cfg.blocks
        self.step = 2 ** self.blocks
        self.halo = HALO_BLOCKS * self.step
        self.pad = -(-(self.fe.n_fft // 2) // self.fe.hop_length)  # frames the STFT's half window reaches
        self.mel = LogMel(self.fe, model.device)
        with torch.no_grad():
            self.folded = folded_blocks(model.network)  # conv weights with the eval BatchNorm folded in

    def pool(self, recordings: Iterable[Recording], n: int) -> np.ndarray:
        """(n, width) embeddings: each recording's windows at their rows (rows no recording names stay 0).
        Edge frames of windows of several recordings are computed together, EDGE_WINDOWS at a time: fewer and
        larger calls, which a shared machine's threads need (each small op waits for every thread)."""
        out = np.zeros((n, self.model.width), np.float32)
        pending: dict[int, list[tuple]] = {}
        for rec in recordings:
            for duration, rows, top, total, spans in self._interiors(rec):
                if not spans:
                    out[rows] = self._finish(top, total, duration)
                    continue
                pending.setdefault(duration, []).append((rows, top, total, spans))
                if sum(len(p[0]) for p in pending[duration]) >= EDGE_WINDOWS:
                    self._flush(duration, pending.pop(duration), out)
        for duration, parts in pending.items():
            self._flush(duration, parts, out)
        return out

    def _interiors(self, rec: Recording):
        """Per group of the recording and batch of <= POOL_WINDOWS windows of one duration: (duration, output
        rows, max and sum of their interior frames, their edge spans or ())."""
        start_ms, duration_ms = np.asarray(rec.start_ms, np.int64), np.asarray(rec.duration_ms, np.int64)
        if not len(start_ms):
            return
        if np.any(start_ms % self.hop_ms) or np.any(duration_ms % self.hop_ms) or np.any(start_ms < 0) \
                or np.any(duration_ms < 1000):
            raise ValueError(f"frame pooling: windows must start at >= 0 ms, last >= 1000 ms, and both on the "
                             f"{self.hop_ms}-ms grid")
        samples = max(int(rec.samples), int(np.max((start_ms + duration_ms) * SAMPLES_PER_MS)))
        total = self.fe.frames(samples)  # log-mel frames of the whole recording
        first = start_ms // self.hop_ms
        last = first + self.step * (self._blocks(duration_ms) - 1)
        order = np.argsort(first, kind="stable")
        for group in _groups(first[order], last[order], self.halo):
            chosen = order[group]
            lo = max(0, int(first[chosen].min()) - self.halo)
            hi = min(total, int(last[chosen].max()) + self.step + self.halo)
            rows, mel, wave, at = self._rows(rec.read, samples, lo, hi)
            for duration in np.unique(duration_ms[chosen]).tolist():
                same = chosen[duration_ms[chosen] == duration]
                blocks, edges = self._geometry(duration)[:2]
                for begin in range(0, len(same), POOL_WINDOWS):
                    part = same[begin: begin + POOL_WINDOWS]
                    top, sums = _interior_max_sum(rows, first[part] - lo + self.step * edges, self.step,
                                                  blocks - 2 * edges)
                    spans = self._edge_spans(wave, first[part] * self.fe.hop_length - at, mel, first[part] - lo,
                                             duration) if edges else ()
                    yield duration, rec.rows[part], top, sums, spans

    def _blocks(self, duration_ms: np.ndarray) -> np.ndarray:
        """Output frames K of windows (the reference's: 1 + samples // hop log-mel frames, halved B times)."""
        return (1 + duration_ms * SAMPLES_PER_MS // self.fe.hop_length) // self.step

    def _geometry(self, duration_ms: int) -> tuple[int, int, int, int, int]:
        """Windows of one duration: K output frames, edge frames per end, the head's log-mel frames 0 ... L - 1
        (L = 2 (... (2 edges + 1) ...) + 1: what its frames depend on), the tail's first log-mel frame a (one
        frame before the pairs each block pools, down the blocks; the tail runs to the window's end), and
        the samples of each edge span: 2 pad - 1 hops, enough for the pad frames at its end of the window that
        the window's reflect padding reaches (frames 0 ... pad - 1 and F - pad + 1 ... F, `_edge_spans`), equal
        for head and tail so one front-end call takes both."""
        blocks = int(self._blocks(np.array([duration_ms]))[0])
        edges = min(self.edges, (blocks - 1) // 2)  # at least one interior frame
        head_frames, tail_first = edges, blocks - edges
        for _ in range(self.blocks):
            head_frames, tail_first = 2 * head_frames + 1, 2 * tail_first - 1
        span = (2 * self.pad - 1) * self.fe.hop_length
        return blocks, edges, head_frames, tail_first, min(span, duration_ms * SAMPLES_PER_MS)

    def _rows(self, read: Callable[[int, int], np.ndarray], samples: int, lo: int,
              hi: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, int]:
        """Rows lo ... hi - 2**B of the recording (from its log-mel frames lo ... hi - 1, as the whole recording's
        centred STFT gives them), those frames normalised, the samples read for them and the first one's index."""
        hop = self.fe.hop_length
        first = max(0, (lo - self.pad) * hop)
        end = min(samples, (hi - 1 + self.pad) * hop)
        wave = np.asarray(read(first, end - first), np.float32)
        skip = lo - first // hop
        x = self._normalise(self.mel(wave[None])[0][:, skip: skip + hi - lo].to(self.model.device))
        return frame_features(self.model.network, x, self.folded), x, wave, first

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.model.spec.mean) / self.model.spec.std

    def _edge_spans(self, wave: np.ndarray, offsets: np.ndarray, mel: torch.Tensor, starts: np.ndarray,
                    duration_ms: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
        """What the edge frames need: each window's first and last `span` samples (W, span) x 2, for the log-mel
        frames its own reflect padding reaches, and its other head and tail frames (W, mels, frames) x 2 from
        the recording's normalised log-mel `mel` (windows' frame 0 at columns `starts`): a frame wholly inside
        the window sees the recording's samples, so it is the recording's frame. 12 frames per span before
        (the whole head and tail from the window's samples); 8 now (v2: the edges' front end 0.60 -> 0.41 CPU s
        on the bench's 60-s recording, one thread)."""
        _, _, head_frames, tail_first, span = self._geometry(duration_ms)
        length = duration_ms * SAMPLES_PER_MS
        own_head, own_tail = self._own(duration_ms)
        heads = np.stack([wave[o: o + span] for o in offsets])
        tails = np.stack([wave[o + length - span: o + length] for o in offsets])
        at = torch.from_numpy(starts).to(mel.device)[:, None]
        columns = mel.T  # (frames, mels)
        last = length // self.fe.hop_length  # the window's last log-mel frame
        head_rec = columns[at + torch.arange(own_head, head_frames, device=mel.device)].transpose(1, 2)
        tail_rec = columns[at + torch.arange(tail_first, last + 1 - own_tail, device=mel.device)].transpose(1, 2)
        return heads, tails, head_rec, tail_rec

    def _own(self, duration_ms: int) -> tuple[int, int]:
        """Log-mel frames at the head and at the tail of a window that its own reflect padding reaches (the
        pad frames whose n_fft window crosses the window's edge; all of the head or tail if it is shorter)."""
        _, _, head_frames, tail_first, _ = self._geometry(duration_ms)
        last = duration_ms * SAMPLES_PER_MS // self.fe.hop_length
        return min(self.pad, head_frames), min(self.pad, last + 1 - tail_first)

    def _flush(self, duration_ms: int, parts: list[tuple], out: np.ndarray) -> None:
        """Edge frames of the pending windows of one duration, then their embeddings into `out`."""
        rows = np.concatenate([p[0] for p in parts])
        top, total = torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts])
        heads, tails = np.concatenate([p[3][0] for p in parts]), np.concatenate([p[3][1] for p in parts])
        head_rec, tail_rec = torch.cat([p[3][2] for p in parts]), torch.cat([p[3][3] for p in parts])
        for begin in range(0, len(rows), EDGE_WINDOWS):
            part = slice(begin, begin + EDGE_WINDOWS)
            head, tail = self._edge_frames(heads[part], tails[part], head_rec[part], tail_rec[part], duration_ms)
            for frame in itertools.chain(head.unbind(1), tail.unbind(1)):
                torch.maximum(top[part], frame, out=top[part])
                total[part] += frame
        out[rows] = self._finish(top, total, duration_ms)

    def _finish(self, top: torch.Tensor, total: torch.Tensor, duration_ms: int) -> np.ndarray:
        return (top + total / self._geometry(duration_ms)[0]).float().cpu().numpy()

    def _edge_frames(self, heads: np.ndarray, tails: np.ndarray, head_rec: torch.Tensor, tail_rec: torch.Tensor,
                     duration_ms: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first and last `edges` output frames of windows, as per-window computes them, from their edge
        spans and recording frames (`_edge_spans`): the head's first log-mel frames carry the window's reflect
        padding at its start, the tail's last at its end, and `_edge_convs` zero-pads only at those ends."""
        edges = self._geometry(duration_ms)[1]
        own_head, own_tail = self._own(duration_ms)
        # the reference's own front-end arithmetic (on CPU: scipy; torch.stft differs from it by up to 1e-3 in
        # the log of quiet bins, which the edge frames would carry into the max), in calls of
        # EDGE_SPANS_PER_CALL spans: 8 at a time, a busy 2-core machine spent a quarter of the time in the
        # filterbank matmul's thread handoffs (measured)
        spans = np.concatenate([heads, tails])
        if self.model.device == "cpu":
            mel = torch.from_numpy(self.mel._numpy(spans, chunk=EDGE_SPANS_PER_CALL))
        else:
            mel = self.mel(spans)
        mel = self._normalise(mel.to(self.model.device))
        head_mel = torch.cat([mel[: len(heads), :, :own_head], head_rec], dim=-1)
        tail_mel = torch.cat([tail_rec, mel[len(heads):, :, mel.shape[-1] - own_tail:]], dim=-1)
        network = self.model.network
        with torch.no_grad():
            head = _edge_convs(self.folded, head_mel.unsqueeze(1), "head")
            tail = _edge_convs(self.folded, tail_mel.unsqueeze(1), "tail")
            return _head(network, head)[:, :edges], _head(network, tail)[:, -edges:]

    def embed_items(self, audio: ShardAudio, items: pa.Table) -> np.ndarray:
        """Embeddings of a shard job's items (columns key, clip, start_ms, duration_ms), in row order:
        eligible windows pooled per recording, other rows per-window (the reference)."""
        ok = eligible(items, self.fe)
        clips = np.asarray(items["clip"].to_pylist(), dtype=object)
        start = items["start_ms"].to_numpy(zero_copy_only=False)
        length = items["duration_ms"].to_numpy(zero_copy_only=False)
        recordings = (Recording(lambda at, count, clip=clip: _read(audio, clip, at, count), audio.rows[clip][3],
                                start[rows], length[rows], rows)
                      for clip in sorted(set(clips[ok])) for rows in [np.flatnonzero(ok & (clips == clip))])
        out = self.pool(recordings, items.num_rows)
        if (~ok).any():
            rest = np.flatnonzero(~ok)
            out[rest] = self.model.embed(audio.waves(items.take(pa.array(rest))))
        return out


def _interior_max_sum(rows: torch.Tensor, starts: np.ndarray, step: int,
                      count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, D) max and sum over rows starts + step k (k < count) of each window. Windows on one block phase
    share all but one row with their neighbour, so the rows' sliding max and sum (`_sliding`, SLIDE_ROWS rows
    at a time, only where windows start) cost ~12 passes over the rows, where gathering each window's rows
    cost 3 count (v2: 21 gathers, maxima and sums per window; one thread, 4,000 windows at a 10-ms hop:
    594 -> 236 ms). A float64 cumulative sum's differences were 3x slower than the doubling sums."""
    top = torch.empty((len(starts), rows.shape[1]), dtype=rows.dtype, device=rows.device)
    total = torch.empty_like(top)
    reach, ordered = step * (count - 1), np.sort(starts)
    at = int(ordered[0])
    while True:
        chosen = np.flatnonzero((starts >= at) & (starts < at + SLIDE_ROWS))
        top_rows, sum_rows = _sliding(rows[at: at + SLIDE_ROWS + reach], step, count)
        index = torch.from_numpy(starts[chosen] - at).to(rows.device)
        where = torch.from_numpy(chosen).to(rows.device)
        top.index_copy_(0, where, top_rows.index_select(0, index))
        total.index_copy_(0, where, sum_rows.index_select(0, index))
        later = np.searchsorted(ordered, at + SLIDE_ROWS)
        if later == len(ordered):
            return top, total
        at = int(ordered[later])


def _sliding(x: torch.Tensor, step: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and sum over x[g + step k], k < count, for every g with g + step (count - 1) < len(x), by doubling:
    level j reduces 2**j rows (one pass each from level j - 1); the max is two overlapping windows of the top
    level (exact: max is idempotent), the sum adds the levels of count's binary digits (float rounding only:
    the order of the additions changes). Only those levels are kept (v2: 3 of 5)."""
    n = len(x) - step * (count - 1)
    high, total, level, digits = x, x, 0, {}
    while True:
        if count >> level & 1:
            digits[level] = total
        if 2 ** (level + 1) > count:
            break
        shift = step * 2 ** level
        high, total, level = torch.maximum(high[:-shift], high[shift:]), total[:-shift] + total[shift:], level + 1
    rest = step * (count - 2 ** level)
    top = torch.maximum(high[:n], high[rest: rest + n])
    total, done = None, 0
    for level in sorted(digits, reverse=True):
        piece = digits[level][step * done: step * done + n]
        total = piece.clone() if total is None else total.add_(piece)
        done += 2 ** level
    return top, total


def _read(audio: ShardAudio, clip: str, first: int, count: int) -> np.ndarray:
    """Samples first ... first + count - 1 of a clip (spans are read in whole ms; `first` is on the hop grid)."""
    return audio.span(clip, first // SAMPLES_PER_MS, -(-count // SAMPLES_PER_MS))[:count]


def cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise 1 - cos(a_i, b_i), in float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return 1.0 - np.einsum("ij,ij->i", a, b) / np.maximum(norms, 1e-30)


def compare(model: StoreModel, audio: ShardAudio, items: pa.Table) -> np.ndarray:
    """Cosine distance of frame pooling to per-window for each eligible row of `items` (one shard)."""
    rows = items.filter(pa.array(eligible(items, front_end(model))))
    if rows.num_rows == 0:
        return np.zeros(0)
    return cosine_distances(FramePooler(model).embed_items(audio, rows), model.embed(audio.waves(rows)))
