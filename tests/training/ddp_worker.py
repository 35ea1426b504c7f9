"""Run by test_ddp.py, under torchrun or as one plain process: pre-train, then write what this rank saw and
the digest of its weights at every checkpoint.

Usage: ddp_worker.py DATA OUT RUN EPOCHS [MAX_STEPS|-] [resume]
"""

from __future__ import annotations

import hashlib
import json
import sys

import torch

import training.train as train_module
from training.config import TrainConfig, read_config_file


def main(data: str, out: str, run: str, epochs: int, max_steps: int | None, resume: bool) -> None:
    seen: list[list[int]] = []  # [epoch, batch number, clip indices...] per batch this rank trained on
    real_batches = train_module._batches

    def recording(cfg, table, sampler, state, stats, device):
        plan = sampler.batches(state)
        for batch in real_batches(cfg, table, sampler, state, stats, device):
            number, indices = next(plan)
            seen.append([state.epoch, number, *(int(i) for i in indices)])
            yield batch

    train_module._batches = recording
    digests: list[str] = []
    real_save = train_module._save

    def saving(root, cfg, byol, *args):  # digest of online + target parameters and buffers at every checkpoint
        real_save(root, cfg, byol, *args)
        h = hashlib.sha256()
        for name, tensor in sorted({**byol.online.state_dict(prefix="online."),
                                    **byol.target.state_dict(prefix="target.")}.items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        digests.append(h.hexdigest())

    train_module._save = saving
    values = {**read_config_file("tiny"), "data": data, "diet": "all", "batch_size": 4, "epochs": epochs,
              "stats_crops": 64, "device": "cpu", "run": run, "max_steps": max_steps, "resume": resume}
    train_module.pretrain(TrainConfig(**values))
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    with open(f"{out}/rank-{rank}.json", "w") as f:
        json.dump({"seen": seen, "digests": digests}, f)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], args[2], int(args[3]), None if len(args) < 5 or args[4] == "-" else int(args[4]),
         len(args) > 5 and args[5] == "resume")
