"""Run under torchrun by test_ddp.py: pre-train, then write what this rank saw and its weights' digest."""

from __future__ import annotations

import hashlib
import json
import sys

import torch

import training.train as train_module
from training.config import TrainConfig, read_config_file


def main(data: str, out: str) -> None:
    seen: list[list[int]] = []
    real_batches = train_module._batches

    def recording(cfg, table, sampler, state, stats, device):  # the clips each batch of this rank holds
        for _, indices in sampler.batches(state):
            seen.append([int(i) for i in indices])
        return real_batches(cfg, table, sampler, state, stats, device)

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
    values = {**read_config_file("tiny"), "data": data, "diet": "all", "batch_size": 4, "epochs": 2,
              "stats_crops": 64, "device": "cpu", "run": "ddp"}
    train_module.pretrain(TrainConfig(**values))
    rank = torch.distributed.get_rank()
    with open(f"{out}/rank-{rank}.json", "w") as f:
        json.dump({"seen": seen, "digests": digests, "batches": len(seen)}, f)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
