"""Typed training configuration: the one place a dict (YAML, CLI, Ray) becomes a TrainConfig.

Every model here forbids unknown keys, so a typo is an error that names the key instead of a
silently ignored setting. `load_config` merges a YAML file with `key=value` overrides and turns
any validation failure into a one-line `ConfigError` naming the field and the source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from deepnets.errors import ConfigError, format_validation_error
from deepnets.storage import Location

# Validation context key: the model and its options were checked against the model registry
# already, by the sweep's driver. Tune's trial process passes it, because the registry imports
# torch, which that process otherwise does without (deepnets/torch_backend.py).
MODELS_CHECKED = "models_checked"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(Strict):
    """Which network to build: a registry name plus its family's options."""

    name: str = "resnet18"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_model_and_options(self, info: ValidationInfo) -> ModelConfig:
        if (info.context or {}).get(MODELS_CHECKED):
            return self
        from deepnets.models import ModelConfigError, validate_model_options

        try:
            validate_model_options(self.name, self.options)
        except ModelConfigError as err:
            raise ValueError(str(err)) from None
        return self


class DataConfig(Strict):
    """Dataset, where it lives, and how much of it a run uses."""

    dataset: str = "digits"
    # None: the DEEPNETS_DATA_ROOT environment variable, else ~/.cache/deepnets/data.
    root: Path | None = None
    download: bool = True
    # Stratified, seeded subsets; None keeps the whole split.
    train_subset: int | None = Field(default=None, ge=10)
    test_subset: int | None = Field(default=None, ge=10)
    # Held out of the training split for per-epoch validation (what ASHA ranks trials by).
    val_fraction: float = Field(default=0.1, ge=0.0, lt=0.9)
    # Classification: square side in pixels the batches are resized to. Segmentation: side of
    # the square training crops (evaluation always sees whole images). None: native size.
    resolution: int | None = Field(default=None, ge=8, le=1024)
    augment: Literal["none", "report", "standard"] = "none"

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        from deepnets.data.registry import check_dataset_name

        return check_dataset_name(name)


class OptimConfig(Strict):
    """Optimizer; `lr` is the learning rate at `global_batch_size` (no implicit scaling)."""

    name: Literal["sgd", "rmsprop", "adam", "adamw"] = "adam"
    lr: float = Field(default=1e-3, gt=0.0, le=100.0)
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(default=0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimConfig:
        if self.nesterov and (self.name != "sgd" or self.momentum == 0.0):
            raise ValueError("nesterov needs name 'sgd' and momentum > 0")
        if self.momentum and self.name in ("adam", "adamw"):
            raise ValueError(f"momentum is not an option of {self.name} (it uses betas)")
        return self


class ScheduleConfig(Strict):
    """Learning-rate schedule over the whole run, stepped every optimizer step."""

    name: Literal["none", "cosine", "onecycle", "step"] = "cosine"
    warmup_epochs: float = Field(default=0.0, ge=0.0)
    # For `step`: multiply the lr by `gamma` every `step_epochs` epochs.
    step_epochs: int = Field(default=30, ge=1)
    gamma: float = Field(default=0.1, gt=0.0, le=1.0)


class CheckpointConfig(Strict):
    every_epochs: int = Field(default=1, ge=1)
    # Checkpoints kept on storage (oldest deleted first); the latest is always kept.
    keep: int = Field(default=2, ge=1)


class TrainConfig(Strict):
    """A whole training run: what Ray hands every worker, validated on the worker's first line."""

    # "segmentation": a label per pixel (voc2012 or voc:<path> data, an FCN model).
    task: Literal["classification", "segmentation"] = "classification"
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    epochs: int = Field(default=5, ge=1, le=10_000)
    num_workers: int = Field(default=1, ge=1)
    # Images per optimizer step summed over all workers; each worker takes an equal share.
    global_batch_size: int = Field(default=64, ge=1, validate_default=True)
    # Images per evaluation batch on each worker. None: the training share on a CPU (larger
    # batches evaluated slower there), up to 16x it on a GPU (worker.eval_batch_size).
    eval_batch_size: int | None = Field(default=None, ge=1)
    # None: an equal share of one machine's CPUs (all of them for a single worker).
    cpus_per_worker: float | None = Field(default=None, gt=0.0)
    use_gpu: bool = False
    # Fraction of a GPU per worker: below 1 lets several small trials share one GPU.
    gpus_per_worker: float = Field(default=1.0, gt=0.0)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    # NHWC activations: faster for every report model on CPU (5-47%, bench/throughput.py) and
    # what tensor cores want on a GPU.
    channels_last: bool = True
    # torch.compile the model: "reduce-overhead" also replays each step as a CUDA graph. At the
    # report's batch of 64 a GPU step is mostly kernel launches: resnet18 trained 1.9-2.4x faster
    # that way on an H200 (bench/throughput.py), for ~17 s of compiling per shape and mode.
    # "cudagraphs": CUDA graphs without Inductor's code generation, so less to compile; not yet
    # timed on a GPU (engine.compiled). "step_graph": no compiling; the whole training step
    # (optimizer step included) captured once as a CUDA graph and replayed (deepnets.step_graph;
    # one worker, a constant lr, no fp16); not yet timed on a GPU.
    compile: Literal[
        "off", "default", "reduce-overhead", "max-autotune", "cudagraphs", "step_graph"
    ] = "off"
    seed: int = Field(default=0, ge=0)
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    aux_loss_weight: float = Field(default=0.3, ge=0.0)
    # Re-trying a failed run from its last checkpoint (a killed worker, a lost node).
    max_failures: int = Field(default=2, ge=-1)
    # A local (or shared) folder, or a URI: s3://bucket/runs, gs://..., file:///...
    output_dir: str = "runs"
    # Run directory name under output_dir; None derives one from model, dataset and seed.
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$")

    @field_validator("global_batch_size")
    @classmethod
    def _batch_splits_over_workers(cls, batch: int, info: ValidationInfo) -> int:
        workers = info.data.get("num_workers")
        if workers is None:  # num_workers itself was invalid and is reported on its own
            return batch
        if batch < workers:
            raise ValueError(
                f"is smaller than num_workers ({workers}): every worker needs at least one "
                "image per step"
            )
        if batch % workers:
            raise ValueError(f"must be divisible by num_workers ({workers})")
        return batch

    @model_validator(mode="after")
    def _task_fits_data_and_model(self, info: ValidationInfo) -> TrainConfig:
        models_checked = (info.context or {}).get(MODELS_CHECKED, False)
        check_task(self.task, self.data, None if models_checked else self.model.name)
        return self

    @model_validator(mode="after")
    def _step_graph_can_capture(self) -> TrainConfig:
        if self.compile == "step_graph":
            check_step_graph(self)
        return self

    @property
    def batch_size_per_worker(self) -> int:
        return self.global_batch_size // self.num_workers

    @property
    def run_name(self) -> str:
        return self.name or f"{self.model.name.replace('/', '-')}-{self.data.dataset}-s{self.seed}"

    @field_validator("output_dir", mode="before")
    @classmethod
    def _known_scheme(cls, value: Any) -> Any:
        from deepnets.storage import check_location

        return check_location(str(value), "output_dir") if isinstance(value, str | Path) else value

    @property
    def run_dir(self) -> Location:
        return Location(self.output_dir) / self.run_name


def check_step_graph(cfg: TrainConfig) -> None:
    """What capturing the whole step as one CUDA graph rules out (deepnets.step_graph)."""
    unmet = []
    if cfg.num_workers != 1:
        unmet.append(f"num_workers 1 (got {cfg.num_workers}: DDP's all-reduce is not captured)")
    if cfg.schedule.name != "none" or cfg.schedule.warmup_epochs:
        unmet.append(
            "a constant lr: schedule.name none and no schedule.warmup_epochs (got "
            f"{cfg.schedule.name}, warm-up {cfg.schedule.warmup_epochs}: the captured step "
            "keeps the lr it was captured with)"
        )
    if cfg.precision == "fp16":
        unmet.append("precision fp32 or bf16 (fp16's GradScaler reads back every step)")
    if unmet:
        raise ValueError(f"compile 'step_graph' needs {'; '.join(unmet)}")


def check_task(task: str, data: DataConfig, model_name: str | None) -> None:
    """Datasets and models are made for one task; say which setting disagrees, and the fix.
    model_name None: the model's side was checked already (the registry imports torch)."""
    from deepnets.data.registry import dataset_spec

    data_task = dataset_spec(data.dataset).task
    if data_task != task:
        other = (
            "a classification dataset"
            if task == "classification"
            else "voc2012, shapes or voc:<path>"
        )
        raise ValueError(
            f"data.dataset '{data.dataset}' is a {data_task} dataset but task is {task} (set "
            f"task: {data_task}, or use {other})"
        )
    if model_name is not None:
        check_model_task(task, model_name)
    if task == "segmentation" and data.augment == "report":
        raise ValueError(
            "data.augment 'report' (rotation, colour jitter) is for classification; "
            "segmentation takes 'none' or 'standard' (random zoom 0.5-2x, crop, flip)"
        )


def check_model_task(task: str, model_name: str) -> None:
    from deepnets.models import model_family

    if (model_family(model_name) == "fcn") != (task == "segmentation"):
        allowed = "fcn32s, fcn16s, fcn8s" if task == "segmentation" else "a classifier"
        raise ValueError(f"model.name '{model_name}' does not do {task}; use {allowed}")


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `tree["a"]["b"] = value` for `dotted == "a.b"`, creating the dicts on the way."""
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted}: '{key}' is a value, not a section")
        node = child
    node[leaf] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`optim.lr=0.01` -> ("optim.lr", 0.01); values are parsed as YAML scalars."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}': expected key=value, e.g. optim.lr=0.01")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; any problem is a one-line ConfigError."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{path}:{where} malformed YAML ({getattr(err, 'problem', err)})"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def validate_train_config(raw: dict[str, Any], source: str = "config") -> TrainConfig:
    """Validate a plain dict; failures become a one-line ConfigError naming field and source."""
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, TrainConfig)) from None


def load_config(
    path: Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """Build a TrainConfig from an optional YAML file plus `key=value` overrides (later wins)."""
    raw: dict[str, Any] = read_yaml_mapping(path) if path else {}
    for text in overrides:
        set_dotted(raw, *parse_override(text))
    source = str(path) if path else "command line"
    if path and overrides:
        source = f"{path} + command line"
    return validate_train_config(raw, source)
