"""iNat image classifier: any timm backbone -> channel attention -> timm's pooling -> MLP head -> focal loss.

    pixel_values [B, 3, H, W]
      -> backbone.forward_features (timm, num_classes=0)  CNN: [B, C, h, w]; ViT/EVA: tokens [B, N, C]; Swin: NHWC
      -> attention (timm se / eca / cbam on NCHW maps, or none)   same shape
      -> backbone.forward_head(pre_logits=True)           [B, F]  timm's own pooling and pre-logits layers
      -> head (Linear -> BN -> ReLU -> Dropout)*, Linear  [B, num_labels]

Shipped with checkpoints for `trust_remote_code` loading: imports only torch, timm, transformers and its siblings.
"""

import math
import os
import sys
from collections import OrderedDict
from collections.abc import Iterable

import timm
import torch
from timm.layers import create_attn
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import logging
from transformers.utils.hub import is_offline_mode

from .backbone import CLASSIFIER_STAGES, backbone_stage_groups, tensor_names
from .configuration_inat import InatConfig
from .image_processing_inat import image_processor_from_config
from .losses import focal_loss

logger = logging.get_logger(__name__)

_WEIGHT_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


class InatHead(nn.Module):
    """Per hidden size Linear -> BatchNorm1d (optional) -> ReLU -> Dropout, then Linear (Dropout -> Linear alone
    without hidden sizes, as timm's ClassifierHead)."""

    def __init__(self, in_features: int, config: InatConfig):
        super().__init__()
        blocks = []
        for width in config.head_hidden_sizes:
            layers = OrderedDict(
                fc=nn.Linear(in_features, width, bias=not config.head_batch_norm),  # BN's shift makes a bias redundant
                norm=nn.BatchNorm1d(width) if config.head_batch_norm else nn.Identity(),
                act=nn.ReLU(inplace=True),
                drop=nn.Dropout(config.drop_rate),
            )
            blocks.append(nn.Sequential(layers))
            in_features = width
        self.hidden = nn.Sequential(*blocks)
        self.drop = nn.Dropout(config.drop_rate) if not blocks else nn.Identity()  # the last block ends with one
        self.classifier = nn.Linear(in_features, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.drop(self.hidden(pooled)))  # [B, C] -> [B, num_labels]


class InatPreTrainedModel(PreTrainedModel):
    config_class = InatConfig
    config: InatConfig
    base_model_prefix = "inat"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    # The loss is a per-batch mean: with `False` the Trainer scales it for gradient accumulation itself and does not
    # multiply it by the number of processes under DDP.
    accepts_loss_kwargs = False
    supports_gradient_checkpointing = True  # timm checkpoints its blocks itself (`set_grad_checkpointing`)
    _no_split_modules = ["BasicBlock", "Bottleneck"]  # set per backbone in __init__
    _timm_initialised: frozenset[int] = frozenset()  # ids of modules `_init_weights` leaves alone

    def _init_weights(self, module: nn.Module) -> None:
        """timm's CNN init for new tensors; the backbone timm has just initialised is left alone. (`from_pretrained`
        builds on the meta device and calls this for tensors missing from the checkpoint only.)"""
        if id(module) in self._timm_initialised:
            return
        is_norm = isinstance(module, nn.GroupNorm | nn.LayerNorm) or hasattr(module, "running_mean")  # + batch norms
        if isinstance(module, nn.Linear):
            # Small weights: the classifier starts near uniform predictions; hidden layers are followed by BN.
            init.trunc_normal_(module.weight, std=0.02)
        elif isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Conv1d):  # ECA's conv across channels: PyTorch's default, which timm keeps
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
        elif is_norm and module.weight is not None:
            init.ones_(module.weight)
        if (is_norm or isinstance(module, nn.Linear | nn.Conv2d | nn.Conv1d)) and module.bias is not None:
            init.zeros_(module.bias)
        if getattr(module, "running_mean", None) is not None:
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        # Non-persistent buffers are never in a checkpoint: timm layers that own some (BlurPool2d) recompute them.
        if hasattr(module, "init_non_persistent_buffers"):
            module.init_non_persistent_buffers()

    def _set_gradient_checkpointing(self, enable: bool = True, gradient_checkpointing_func=None, every_n_layers=1):
        # timm checkpoints each block with its own `checkpoint_seq`; transformers' function is not needed.
        self.backbone.set_grad_checkpointing(enable)
        self.gradient_checkpointing = enable

    def get_input_embeddings(self):
        return None  # an image model has no token embeddings


class InatForImageClassification(InatPreTrainedModel):
    """Any timm backbone + channel attention + MLP head, trained with focal loss (see [`InatConfig`]).

    Stage groups for layer-wise learning rates and progressive unfreezing are timm's (`backbone_stage_groups`):
    [`stage_names`] is e.g. `stem, layer1..layer4, attention, head` for a ResNet.
    """

    def __init__(self, config: InatConfig):
        super().__init__(config)
        config.validate()  # attributes may have been changed after the config was built
        self.num_labels = config.num_labels
        # num_classes=0: forward_head(pre_logits=True) pools and applies the backbone's own pre-logits layers.
        # pretrained=False: from_pretrained builds on the meta device; see `from_backbone_pretrained`.
        self.backbone = timm.create_model(config.backbone, pretrained=False, num_classes=0, **config.backbone_kwargs)
        # post_init() keeps timm's init of the backbone (zero-init last BN of each block...), except on the meta
        # device (from_pretrained), where backbone tensors missing from a checkpoint need an init.
        meta = any(t.is_meta for t in self.backbone.parameters())
        self._timm_initialised = frozenset() if meta else frozenset(map(id, self.backbone.modules()))
        info = config.backbone_info  # feature layout and widths, probed on the meta device (cached)
        self.attention = (
            nn.Identity()
            if config.attn_layer == "none"
            else create_attn(config.attn_layer, info.num_features, rd_ratio=config.rd_ratio)
        )
        self.head = InatHead(info.head_features, config)
        self.gradient_checkpointing = False

        # {stage: parameter/buffer names relative to the model}, input -> output; timm's head side joins the head.
        groups = backbone_stage_groups(self.backbone)
        self._stage_tensors = {s: [f"backbone.{n}" for n in names] for s, names in groups.items() if s != "head"}
        self._stage_tensors["attention"] = [f"attention.{n}" for n in tensor_names(self.attention)]
        self._stage_tensors["head"] = [f"backbone.{n}" for n in groups.get("head", [])]
        self._stage_tensors["head"] += [f"head.{n}" for n in tensor_names(self.head)]
        # device_map="auto" never splits a block: the blocks of a Sequential stage (ResNet layerN), else the stage.
        blocks = [
            block
            for modules in self.stage_modules(self.backbone_stage_names).values()
            for module in modules
            for block in (module.children() if isinstance(module, nn.Sequential | nn.ModuleList) else [module])
        ]
        self._no_split_modules = sorted(
            {type(m).__name__ for m in blocks if next(m.children(), None) is not None}
            or set(InatPreTrainedModel._no_split_modules)
        )
        self.post_init()
        self._timm_initialised = frozenset()  # a later init pass (e.g. a resize) is transformers' to make

    # ------------------------------------------------------------------ forward

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        apply_temperature: bool | None = None,
    ) -> ImageClassifierOutput | tuple[torch.Tensor, ...]:
        """`pixel_values` [B, 3, H, W] (`create_image_processor`); `labels`: class indices [B] or soft targets
        [B, num_labels] (mixup), giving the focal loss. `output_hidden_states`: timm's `forward_intermediates` and
        the features after attention. `apply_temperature` (default: when not training): the logits divided by the
        calibrated `config.temperature`, so that `pipeline()` and `softmax(model(x).logits)` give calibrated
        probabilities; the loss always sees the raw logits. inat_hf's inference path passes `False` and divides
        each view itself (`inat_hf.inference.tta`), as for an exported model."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        self._check_pixel_values(pixel_values)
        if self.training and self.config.head_batch_norm and self.config.head_hidden_sizes and len(pixel_values) < 2:
            raise ValueError(
                "The head's BatchNorm1d needs at least 2 images per batch in training mode; got 1. Use "
                "drop_last=True in the DataLoader (Trainer: dataloader_drop_last=True) or call model.eval()."
            )
        pixel_values = pixel_values.to(dtype=self.dtype)

        if output_hidden_states:
            if not hasattr(self.backbone, "forward_intermediates"):
                raise ValueError(
                    f"output_hidden_states needs timm's forward_intermediates, which {type(self.backbone).__name__} "
                    f"({self.config.backbone!r}) does not have."
                )
            features, intermediates = self.backbone.forward_intermediates(pixel_values)
        else:
            features = self.backbone.forward_features(pixel_values)  # CNN [B, C, h, w]; ViT tokens [B, N, C]
        features = self.attention(features)  # same shape (identity for token backbones)
        pooled = self.backbone.forward_head(features, pre_logits=True)  # [B, F]
        logits = self.head(pooled)  # [B, num_labels]

        loss = None
        if labels is not None:
            self._check_labels(labels, logits)
            loss = self.objective(logits, labels)
        if apply_temperature if apply_temperature is not None else not self.training:
            logits = logits / self.config.temperature

        hidden_states = (*intermediates, features) if output_hidden_states else None
        if not return_dict:
            return tuple(out for out in (loss, logits, hidden_states) if out is not None)
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)

    def objective(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The training loss: focal loss with the config's `focal_gamma`, `focal_alpha` and `label_smoothing`."""
        c = self.config
        return focal_loss(logits, labels, gamma=c.focal_gamma, alpha=c.focal_alpha, label_smoothing=c.label_smoothing)

    @staticmethod
    def _check_pixel_values(pixel_values: torch.Tensor) -> None:
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(
                f"pixel_values must be a torch.Tensor [batch, 3, height, width], got {type(pixel_values).__name__}; "
                "use the image processor (`create_image_processor()`) to turn images into tensors."
            )
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must have shape [batch, 3, height, width] (4 dims), got shape "
                f"{list(pixel_values.shape)}; add a batch dimension with `pixel_values.unsqueeze(0)` for one image."
            )
        if pixel_values.shape[1] != 3:
            raise ValueError(
                f"pixel_values must have 3 (RGB) channels in dim 1, got {pixel_values.shape[1]} (shape "
                f"{list(pixel_values.shape)}); convert grayscale/RGBA images to RGB and use channels-first layout."
            )

    def _check_labels(self, labels: torch.Tensor, logits: torch.Tensor) -> None:
        # Shapes are checked by focal_loss; here the range of class indices, against the config's label set.
        n = logits.shape[1]
        if labels.is_floating_point():
            return
        message = f"Labels must be class indices in [0, {n}) (num_labels={n})"
        hint = "Check that the dataset's label set matches config.id2label."
        if labels.device.type != "cpu":
            # No host sync per step on an accelerator: checked on the device, failing at the next sync point (else
            # an out-of-range index surfaces as an opaque device-side assert in the loss).
            torch._assert_async(((labels >= 0) & (labels < n)).all(), f"{message}. {hint}")
        else:  # on the CPU a read-back costs nothing
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= n:
                raise ValueError(f"{message}, got values in [{low}, {high}]. {hint}")

    # ------------------------------------------------------------------ stage groups

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Stage groups, input -> output: the backbone's (timm's `group_matcher`), then `attention`, `head`."""
        return tuple(self._stage_tensors)

    @property
    def backbone_stage_names(self) -> tuple[str, ...]:
        """The backbone's stage groups only (what `frozen_stages` and `layer_decay` count over)."""
        return tuple(s for s in self._stage_tensors if s not in CLASSIFIER_STAGES)

    def stage_parameter_names(self, stages: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Full parameter names per stage (`stages` selects and orders a subset); each is in exactly one stage."""
        params = dict(self.named_parameters())
        groups = {stage: [n for n in names if n in params] for stage, names in self._stage_tensors.items()}
        unassigned = set(params).difference(*groups.values())
        if unassigned:  # parameters added after __init__: fail loudly instead of dropping them
            raise RuntimeError(f"Parameters outside every stage of {self.stage_names}: {sorted(unassigned)[:5]}")
        return {stage: groups[stage] for stage in self._select_stages(stages)}

    def stage_parameters(self, stages: Iterable[str] | None = None) -> dict[str, list[nn.Parameter]]:
        """Parameters per stage (as `stage_parameter_names`), e.g. for optimizer param groups."""
        params = dict(self.named_parameters())
        return {stage: [params[n] for n in names] for stage, names in self.stage_parameter_names(stages).items()}

    def stage_modules(self, stages: Iterable[str] | None = None) -> dict[str, list[nn.Module]]:
        """The largest modules whose tensors all belong to each stage, e.g. to find the norm layers of a frozen
        stage. Tensors a parent holds directly (a ViT's `pos_embed`) are in `stage_parameters` only."""
        stage_of = {n: stage for stage, names in self._stage_tensors.items() for n in names}
        owned: dict[str, list[nn.Module]] = {stage: [] for stage in self._select_stages(stages)}
        taken: list[str] = []  # prefixes of modules already listed (their children are not listed again)
        for name, module in self.named_modules():
            if not name or any(name.startswith(f"{p}.") for p in taken):
                continue
            stages_here = {stage_of.get(f"{name}.{n}") for n in tensor_names(module)}
            if len(stages_here) == 1:
                taken.append(name)
                owned.get(stages_here.pop(), []).append(module)
        return owned

    def _select_stages(self, stages: Iterable[str] | None) -> list[str]:
        stages = list(self.stage_names) if stages is None else [stages] if isinstance(stages, str) else list(stages)
        unknown = [s for s in stages if s not in self._stage_tensors]
        if unknown:
            raise ValueError(f"Unknown stage name(s) {unknown}; valid stage names: {', '.join(self.stage_names)}.")
        return stages

    # ------------------------------------------------------------------ preprocessing, saving, loading

    def create_image_processor(self):
        """The evaluation `BitImageProcessor` for this model's config (see `image_processor_from_config`)."""
        return image_processor_from_config(self.config)

    def save_pretrained(self, save_directory, *args, save_image_processor: bool = True, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus the image processor (`preprocessor_config.json`, unless
        `save_image_processor=False`), so that the directory works with `AutoImageProcessor` and `pipeline`."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if save_image_processor and kwargs.get("is_main_process", True):
            hub_kwargs = {}
            if kwargs.get("push_to_hub"):
                keys = ("repo_id", "token", "commit_message", "private", "create_pr", "revision")
                hub_kwargs = {"push_to_hub": True, **{k: kwargs[k] for k in keys if k in kwargs}}
            self.create_image_processor().save_pretrained(save_directory, **hub_kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, refusing a silent label-set change and a damaged weights file.

        Another number of labels (`num_labels=`, `id2label=` or `config=`) re-creates the classifier and needs
        `ignore_mismatched_sizes=True`; without it this raises a `ValueError` naming both label counts.
        """
        if pretrained_model_name_or_path is not None and not kwargs.get("ignore_mismatched_sizes", False):
            cls._check_label_set(pretrained_model_name_or_path, kwargs)
        loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, info) with output_loading_info=True
        # A damaged file of the right size loads without complaint and then predicts NaN: check, one sync for all.
        state = model.state_dict().items()
        tensors = [(name, t) for name, t in state if t.is_floating_point() and t.device.type != "meta"]
        finite = torch.stack([torch.isfinite(t).all().to(tensors[0][1].device) for _, t in tensors]).tolist()
        damaged = [name for (name, _), ok in zip(tensors, finite, strict=True) if not ok]
        if damaged:
            raise ValueError(
                f"The checkpoint {str(pretrained_model_name_or_path)!r} holds non-finite values (NaN/Inf) in "
                f"{len(damaged)} weight tensors (e.g. {', '.join(damaged[:3])}): its weights file is damaged."
            )
        return loaded

    @classmethod
    def _check_label_set(cls, path, kwargs) -> None:
        config = kwargs.get("config")
        if isinstance(config, PreTrainedConfig):
            requested = config.id2label
        elif "id2label" in kwargs:
            requested = kwargs["id2label"]
        elif "num_labels" in kwargs:
            requested = dict.fromkeys(range(kwargs["num_labels"]))
        else:
            return  # labels come from the checkpoint itself
        hub_keys = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
        try:
            saved, _ = cls.config_class.get_config_dict(path, **{k: kwargs[k] for k in hub_keys if k in kwargs})
        except OSError:
            return  # let from_pretrained report the unreadable checkpoint
        saved_labels = saved.get("id2label")
        if saved_labels is None or requested is None:
            return
        if len(saved_labels) != len(requested):
            raise ValueError(
                f"The checkpoint {str(path)!r} has a classifier for {len(saved_labels)} labels but {len(requested)} "
                "were requested. Pass `ignore_mismatched_sizes=True` to from_pretrained to re-initialise the "
                "classifier for the new label set (backbone, attention and hidden head layers are still loaded)."
            )
        saved_names = [saved_labels[k] for k in sorted(saved_labels, key=int)]
        new_names = [requested[k] for k in sorted(requested, key=int)]
        if None not in new_names and saved_names != new_names:
            logger.warning(
                f"Loading {str(path)!r} with different label names but the same number of labels "
                f"({len(saved_names)}): the trained classifier is kept and only relabelled."
            )

    @classmethod
    def from_backbone_pretrained(
        cls,
        config: InatConfig | None = None,
        weights: str | os.PathLike | None = None,
        *,
        output_loading_info: bool = False,
        **config_kwargs,
    ):
        """A new model (from `config` or `config_kwargs`) whose backbone starts from timm weights; attention and
        head are new. (`from_pretrained` builds on the meta device, so timm weights cannot load in `__init__`.)

        `weights` (default `config.backbone`): a local timm state dict (`.safetensors`/`.pth`/`.pt`/`.bin`, read
        without unpickling) or a timm / Hub name (`"resnet50.a1_in1k"`, `"hf-hub:timm/resnet50.a1_in1k"`), loaded
        by timm's `load_pretrained` with the architecture's checkpoint filter (e.g. a ViT resampled to another
        `img_size`). `output_loading_info`: also return `loaded_keys`, `missing_keys` (attention, head) and
        `unexpected_keys` (the source's classifier, dropped).
        """
        if config is None:
            config = InatConfig(**config_kwargs)
        elif config_kwargs:
            raise ValueError(
                f"Pass either a config or config keyword arguments, not both (got {sorted(config_kwargs)})."
            )
        weights = os.fspath(config.backbone if weights is None else weights)
        model = cls(config)
        backbone = model.backbone
        pretrained_cfg = _pretrained_cfg(weights, backbone.pretrained_cfg)
        classifier = pretrained_cfg.get("classifier") or ()
        classifier = tuple(f"{c}." for c in ((classifier,) if isinstance(classifier, str) else classifier))
        # The filter create_model would pass (timm has no registry of them): the model module's checkpoint_filter_fn.
        timm_filter = getattr(sys.modules[type(backbone).__module__], "checkpoint_filter_fn", None)
        dropped = []

        # timm.create_model(pretrained=True) loads non-strictly once the source classifier is dropped and only logs
        # missing keys; running timm's filter here, then checking the fit, turns a partial load into an error.
        def filter_and_check(state_dict, module):
            state_dict = timm_filter(state_dict, module) if timm_filter is not None else state_dict
            expected = module.state_dict()
            unexpected = [k for k in state_dict if k not in expected]
            dropped.extend(sorted(k for k in unexpected if k.startswith(classifier)))
            problems = dict(
                missing=sorted(k for k in expected if k not in state_dict),
                unexpected=sorted(k for k in unexpected if k not in dropped),
                shape_mismatches=[
                    f"{k}: weights {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                    for k, v in state_dict.items()
                    if k in expected and v.shape != expected[k].shape
                ],
            )
            if any(problems.values()):
                found = ", ".join(f"{kind} {keys[:5]}" for kind, keys in problems.items())
                raise _UnfitWeights(
                    f"The weights {weights!r} do not fit backbone={config.backbone!r}: {found} (first 5 of each). "
                    "Use weights of the same timm architecture as config.backbone."
                )
            return state_dict

        try:
            timm.models.load_pretrained(backbone, pretrained_cfg, num_classes=0, filter_fn=filter_and_check)
        except _UnfitWeights as error:
            raise ValueError(str(error)) from None
        except OSError as error:
            if "file" in pretrained_cfg:
                raise
            if is_offline_mode():
                raise OSError(
                    f"HF_HUB_OFFLINE is set and the weights of {weights!r} are not in the local Hugging Face cache. "
                    "Pass a local .safetensors/.pth file via `weights=...`, or download the weights while online."
                ) from error
            raise OSError(f"Could not download the weights of {weights!r}: {error}") from error
        except Exception as error:  # noqa: BLE001 - timm's reader fails in many ways on a file that is not weights
            if "file" not in pretrained_cfg:
                raise
            raise ValueError(
                f"{weights!r} does not contain a state dict (a mapping of names to tensors) that timm can read: "
                f"{type(error).__name__}: {error}"
            ) from error

        model.eval()  # like from_pretrained; the Trainer switches to train mode itself
        if not output_loading_info:
            return model
        return model, {
            "loaded_keys": sorted(f"backbone.{k}" for k in backbone.state_dict()),
            "missing_keys": sorted(k for k in model.state_dict() if not k.startswith("backbone.")),
            "unexpected_keys": dropped,
        }


class _UnfitWeights(Exception):
    """The fit check's error, told apart from timm's reader failing on a file that is not weights."""


def _pretrained_cfg(weights: str, backbone_cfg: dict) -> dict:
    """timm's pretrained cfg that points `load_pretrained` at `weights`: a local file, a Hub repo or a timm name."""
    path = os.path.expanduser(weights)
    if os.path.isfile(path):
        return {**backbone_cfg, "file": path, "custom_load": False}  # a state dict, not the tag's own format (.npz)
    if os.path.isdir(path):
        raise FileNotFoundError(f"Backbone weights {weights!r} is a directory; pass the weights file inside it.")
    if path.endswith(_WEIGHT_FILE_SUFFIXES) or path.startswith((os.sep, ".")):
        raise FileNotFoundError(f"Backbone weights file not found: {weights!r}")
    if weights.startswith("hf-hub:") or "/" in weights:  # "hf-hub:timm/resnet50.a1_in1k" or "timm/resnet50.a1_in1k"
        hub_id = weights.removeprefix("hf-hub:")
        return {**backbone_cfg, "source": "hf-hub", "hf_hub_id": hub_id, "hf_hub_filename": None}
    pretrained_cfg = timm.models.get_pretrained_cfg(weights) if timm.is_model(weights) else None
    if pretrained_cfg is None or not (pretrained_cfg.hf_hub_id or pretrained_cfg.url):
        raise ValueError(
            f"{weights!r} is neither an existing weights file nor a timm model name with pretrained weights; pass "
            "a path to a .safetensors/.pth file or a name such as 'resnet50.a1_in1k' (see timm.list_pretrained())."
        )
    return pretrained_cfg.to_dict()


__all__ = ["InatForImageClassification", "InatPreTrainedModel"]
