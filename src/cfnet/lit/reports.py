"""What a run reports: the per-class tables on the console and in ``metrics/`` of the run dir, the
samples skipped as bad, and the model summary at the start of fitting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary import get_human_readable_count
from rich.console import Console
from rich.table import Table

from cfnet.data.sample import Batch
from cfnet.evaluation.metrics import SegmentationScores
from cfnet.lit.module import SegmentationModule


def rich_table(scores: SegmentationScores, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("class")
    table.add_column("IoU (%)", justify="right")
    for name, value in scores.class_iou.items():
        table.add_row(name, "n/a" if value is None else f"{100 * value:.2f}")
    table.add_section()
    for name, value in scores.summary().items():
        table.add_row(f"[bold]{name}[/bold]", f"[bold]{100 * value:.2f}[/bold]")
    return table


class SegmentationReport(L.Callback):
    """Writes ``metrics/{val,test}.{json,md}`` in the run dir and prints the per-class table.

    The validation table is printed once, when fitting ends (and after ``trainer.validate``);
    every validation epoch still refreshes the files.
    """

    def __init__(self, output_dir: str, test_name: str) -> None:
        self.output_dir = Path(output_dir) / "metrics"
        self.test_name = test_name  # file / title name of the test stage (evaluate: the split)
        self.console = Console()

    def _report(
        self, trainer: L.Trainer, module: SegmentationModule, stage: str, show: bool
    ) -> None:
        if trainer.sanity_checking or stage not in module.scores or not trainer.is_global_zero:
            return
        name = self.test_name if stage == "test" else stage
        model = module.hparams.model["_target_"].rsplit(".", 1)[-1]
        inference = module.inference
        title = f"{name} · {model}" + (f" · {inference.describe()}" if inference else "")
        protocol = inference.protocol() if inference else None
        json_path, md_path = module.scores[stage].save(self.output_dir, name, title, protocol)
        if show:
            self.console.print(rich_table(module.scores[stage], title))
            self.console.print(f"saved {json_path} and {md_path}", highlight=False, soft_wrap=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: SegmentationModule) -> None:
        self._report(trainer, pl_module, "val", show=trainer.state.fn == "validate")

    def on_fit_end(self, trainer: L.Trainer, pl_module: SegmentationModule) -> None:
        self._report(trainer, pl_module, "val", show=True)

    def on_test_end(self, trainer: L.Trainer, pl_module: SegmentationModule) -> None:
        self._report(trainer, pl_module, "test", show=True)


class BadSampleReport(L.Callback):
    """Counts the samples skipped with ``dataset.on_bad_sample=skip`` and reports them at the end:
    a line on the console and every message in ``bad_samples.txt`` in the run dir.

    Skipped samples travel in the batches (``batch["skipped"]``), so this sees those of every
    loader worker; with DDP each process reports its own shard.
    """

    def __init__(self, output_dir: str) -> None:
        self.path = Path(output_dir) / "bad_samples.txt"
        self.messages: dict[str, None] = {}  # unique, in order of discovery (epochs re-read them)
        self.reported = 0

    def _collect(self, batch: Batch) -> None:
        if isinstance(batch, dict):  # a DataModule of the user's may hand other batches
            self.messages.update(dict.fromkeys(batch.get("skipped", [])))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: Batch, batch_idx) -> None:
        self._collect(batch)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch: Batch, batch_idx, *_
    ) -> None:
        self._collect(batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch: Batch, batch_idx, *_) -> None:
        self._collect(batch)

    def _report(self, trainer: L.Trainer) -> None:
        if len(self.messages) == self.reported:  # nothing new since the last report
            return
        self.reported = len(self.messages)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(self.messages) + "\n")
        first = next(iter(self.messages))
        rank = f" (process {trainer.global_rank})" if trainer.world_size > 1 else ""
        print(
            f"skipped {len(self.messages)} bad sample(s){rank} (dataset.on_bad_sample=skip); "
            f"first: {first}; all listed in {self.path}"
        )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer)


class ModelSummary(RichModelSummary):
    """Lightning's model summary at the start of fitting, without its FLOPs: Lightning counts
    FLOPs only for a module with an ``example_input_array`` (one extra forward pass at the crop
    size on every start), which cfnet does not set, so its FLOPs column and "Total FLOPs" line
    would only ever say 0."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        from rich import get_console

        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _ in columns:
            table.add_column(name, justify="right" if name.startswith("Params") else "left")
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        console.print(
            f"Params: {get_human_readable_count(total_parameters)} "
            f"({get_human_readable_count(trainable_parameters)} trainable, {model_size:.1f} MB)",
            highlight=False,
        )
