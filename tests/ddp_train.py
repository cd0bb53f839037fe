"""``accelerate launch tests/ddp_train.py ARGS``: ``scripts/train.py ARGS``, after which each rank writes the sha256
of its model and EMA tensors to ``OUT/rank<k>_weights.sha256`` (``tests/test_multiprocess.py`` compares them)."""

from __future__ import annotations

from stochdeblur.checkpointing import tensors_digest
from stochdeblur.cli import train
from stochdeblur.training import Trainer
from stochdeblur.utils import atomic_write_text


class WeightDigestTrainer(Trainer):
    """The trainer, then this rank's weight digests in ``out_dir`` (written last: their presence means it finished)."""

    def fit(self, resume: str | None = None) -> dict[str, float]:
        result = super().fit(resume)
        model = tensors_digest(self.unwrapped.state_dict().items())
        ema = tensors_digest(self.ema.shadow.items())
        atomic_write_text(self.out_dir / f"rank{self.accelerator.process_index}_weights.sha256",
                          f"model {model}\nema {ema}\n")
        return result


if __name__ == "__main__":
    train.Trainer = WeightDigestTrainer  # the CLI as it is, training with this subclass
    train.run()
