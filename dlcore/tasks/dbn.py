"""Deep belief nets: a stack of RBMs trained greedily, bottom up, in one run (Hinton et al. 2006).

Layer l (0-based) is an RBM whose visible units are the mean-field activations
h_l = p(h_l | h_{l-1}) of the trained layers below (h_0 = the data): deterministic
probabilities, not samples, as in Hinton & Salakhutdinov's code. It trains by CD-k or
PCD-k during updates [l S, (l + 1) S) (S = ``steps_per_layer``, staging by
:mod:`dlcore.tasks.greedy`: every other layer gets exactly zero change, and by default the
optimizer state restarts at each stage); the top layer keeps training after its stage.

The stack is :class:`dlcore.tasks.rbm.RBMTask` with several widths; its report draws
samples of the top RBM's Gibbs chains propagated down to the pixels (``samples.png``,
:mod:`dlcore.tasks.rbm_report`). Discriminative fine-tuning is a classification run of an
``mlp`` with ``activation = "sigmoid"`` and the same widths, warm-started through::

    [init]
    run = "<this run>"
    checkpoint = "latest"
    map = { "" = "encoder" }    # Dense_l <- encoder/Dense_l (W_l, hidden bias c_l)
    exclude = ["Dense_<L>"]     # the classifier's new head
    allow_unused = true         # the visible biases

(``experiments/digits_dbn_finetune.toml``; the accuracy table:
``python examples/pretraining_table.py --family dbn``.)
"""

from typing import Literal

from pydantic import Field, PositiveInt

from dlcore.tasks.context import BuildContext
from dlcore.tasks.greedy import check_stage_budget
from dlcore.tasks.rbm import RBMSection, RBMTask


class DBNConfig(RBMSection):
    """A deep belief net: RBMs of hidden ``widths``, bottom up, each trained for
    ``steps_per_layer`` CD/PCD updates on the mean-field activations of the one below."""

    name: Literal["dbn"] = "dbn"
    widths: list[PositiveInt] = Field(
        default_factory=lambda: [128, 64], min_length=1, description="hidden widths, bottom up"
    )
    steps_per_layer: PositiveInt = Field(1000, description="updates per layer's stage (S)")
    restart_optimizer: bool = Field(True, description="fresh optimizer state at each stage")

    def build(self, ctx: BuildContext) -> RBMTask:
        train = ctx.cfg.train
        total = train.epochs * (ctx.data.sizes["train"] // train.batch_size)
        check_stage_budget(total, len(self.widths), self.steps_per_layer)
        return RBMTask(
            tuple(self.widths),
            steps_per_layer=self.steps_per_layer,
            restart_optimizer=self.restart_optimizer,
            **self.task_fields(ctx),
        )
