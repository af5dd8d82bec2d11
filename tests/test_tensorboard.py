"""TensorBoard event files (dlcore.runs.tensorboard): what a record becomes, how a resume
takes over. The events of real runs are read back where those runs are made: a `dlcore
run` in tests/test_cli.py, killed and stopped runs resumed in tests/test_resume.py, a
two-process run in tests/test_processes.py, and `--no-tensorboard` (none) in
tests/test_run_dir_faults.py."""

import math
import subprocess
import sys

from dlcore.runs.tensorboard import EventLog, flat_hparams
from tests.helpers import REPO, cli_env, read_events, tensorboard_scalars

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4"
    "890000000d4944415478da63f8cfc0f01f0005000201a2f0a8f80000000049454e44ae426082"
)


def test_records_become_scalars_and_non_finite_values_are_skipped(tmp_path):
    log = EventLog(tmp_path, config_text="[train]\nepochs = 2\n")
    log.scalars(
        [
            {"step": 5, "epoch": 0.5, "split": "train", "loss": 0.5, "per_class": [0.25, None]},
            {"step": 10, "epoch": 1, "split": "val", "loss": math.nan, "accuracy": 1},
        ]
    )
    (tmp_path / "curves.png").write_bytes(PNG_1x1)
    log.images([tmp_path / "curves.png"], 10)
    log.hparams({"optimizer.learning_rate": 0.1}, {"hparams/val_loss": math.inf}, 10)
    log.close()
    assert tensorboard_scalars(tmp_path) == {
        ("train/loss", 5): 0.5,
        ("train/per_class/0", 5): 0.25,
        ("val/accuracy", 10): 1.0,
    }
    values = {v.tag: v for e in read_events(tmp_path) for v in e.summary.value}
    assert values["figures/curves"].image.encoded_image_string == PNG_1x1
    assert (values["figures/curves"].image.height, values["figures/curves"].image.width) == (1, 1)
    assert "epochs = 2" in values["config/text_summary"].tensor.string_val[0].decode()
    assert "hparams/val_loss" not in values  # an infinite result is no point either


def test_a_resume_purges_the_steps_it_logs_again(tmp_path):
    first = EventLog(tmp_path)
    first.scalars([{"step": s, "split": "train", "loss": float(s)} for s in (10, 20, 30)])
    first.close()
    second = EventLog(tmp_path)
    second.truncate(20)  # the checkpoint: step 30 will be logged again
    second.scalars([{"step": 30, "split": "train", "loss": -3.0}])
    second.close()
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
    assert tensorboard_scalars(tmp_path) == {
        ("train/loss", 10): 10.0,
        ("train/loss", 20): 20.0,
        ("train/loss", 30): -3.0,
    }


def test_flat_hparams():
    cfg = {"model": {"widths": [8, 4], "dropout": 0.1}, "init": None, "train": {"scan": True}}
    assert flat_hparams(cfg) == {"model.widths": "[8, 4]", "model.dropout": 0.1, "train.scan": True}


def test_help_imports_neither_tensorboardx_nor_matplotlib():
    code = (
        "import sys\nfrom dlcore.cli.main import main\ntry:\n    main(['--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('tensorboardX', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
