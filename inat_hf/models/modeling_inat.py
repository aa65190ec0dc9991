"""iNat image classifier: any timm backbone -> channel attention -> timm's pooling -> MLP head -> focal loss.

    pixel_values [B, 3, H, W]
      -> backbone.forward_features (timm, num_classes=0)  CNN: [B, C, H/32, W/32] (C = 2048 for resnet50);
                                                          ViT/EVA: tokens [B, N, C]; Swin: [B, h, w, C]
      -> attention (timm se / eca / cbam on NCHW maps, or none)   same shape
      -> backbone.forward_head(pre_logits=True)           [B, F]  timm's own pooling (+ its pre-logits norm or
                                                                  conv head: ConvNeXt head.norm, MobileNetV3 conv_head)
      -> head (Linear -> BN -> ReLU -> Dropout)*, Linear  [B, num_labels]

This file is shipped with checkpoints for `trust_remote_code` loading, so it only imports torch, timm, transformers,
safetensors and its sibling modules.
"""

import math
import os
import sys
from collections import OrderedDict
from collections.abc import Iterable
from itertools import chain

import timm
import torch
from safetensors.torch import load_file as load_safetensors
from timm.layers import create_attn
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import logging
from transformers.utils.hub import is_offline_mode, try_to_load_from_cache

from .configuration_inat import CLASSIFIER_STAGES, InatConfig, backbone_stage_groups
from .image_processing_inat import image_processor_from_config
from .losses import focal_loss

logger = logging.get_logger(__name__)

_WEIGHT_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


class InatHead(nn.Module):
    """Classification head: per hidden size Linear -> BatchNorm1d (optional) -> ReLU -> Dropout, then Linear.

    Without hidden sizes it is a linear classifier with dropout in front (as timm's ClassifierHead).
    """

    def __init__(self, in_features: int, config: InatConfig):
        super().__init__()
        blocks = []
        for width in config.head_hidden_sizes:
            blocks.append(
                nn.Sequential(
                    OrderedDict(
                        # The BatchNorm's shift makes a Linear bias redundant.
                        fc=nn.Linear(in_features, width, bias=not config.head_batch_norm),
                        norm=nn.BatchNorm1d(width) if config.head_batch_norm else nn.Identity(),
                        act=nn.ReLU(inplace=True),
                        drop=nn.Dropout(config.drop_rate),
                    )
                )
            )
            in_features = width
        self.hidden = nn.Sequential(*blocks)
        # Dropout always precedes the classifier: the last hidden block ends with one, else add it here.
        self.drop = nn.Dropout(config.drop_rate) if not blocks else nn.Identity()
        self.classifier = nn.Linear(in_features, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        # [B, C] -> [B, head_hidden_sizes[-1]] -> [B, num_labels]
        return self.classifier(self.drop(self.hidden(pooled)))


class InatPreTrainedModel(PreTrainedModel):
    config_class = InatConfig
    config: InatConfig
    base_model_prefix = "inat"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    # The loss is a per-batch mean computed here; with `False` the Trainer scales it for gradient accumulation
    # itself and does not multiply it by the number of processes under DDP.
    accepts_loss_kwargs = False
    # timm models checkpoint their blocks themselves (`set_grad_checkpointing`).
    supports_gradient_checkpointing = True
    # device_map="auto" may place blocks on different devices but never splits one; set per backbone in __init__.
    _no_split_modules = ["BasicBlock", "Bottleneck"]
    _timm_initialised: frozenset[int] = frozenset()  # ids of modules `_init_weights` leaves alone

    def _init_weights(self, module: nn.Module) -> None:
        """Initialise the tensors transformers asks for, leaving the timm backbone's own init alone.

        transformers calls this for every module after `__init__` (`post_init`) and, in `from_pretrained`, for
        modules with tensors missing from the checkpoint (e.g. a classifier re-created by
        `ignore_mismatched_sizes=True`; the `transformers.initialization` helpers skip the loaded ones). A backbone
        timm has just initialised (`__init__` off the meta device) is skipped. What remains are new tensors:
        attention and head (always), and backbone tensors only when a checkpoint lacks them; these get the scheme
        of timm's CNNs (kaiming-normal fan-out convs, unit norms).
        """
        if id(module) in self._timm_initialised:
            return
        if isinstance(module, nn.Linear):
            # Small weights: the classifier starts near uniform predictions; hidden layers are followed by BN.
            init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv1d):
            # ECA's 1-D conv across channels: PyTorch's default init, which timm keeps for it.
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.GroupNorm | nn.LayerNorm) or hasattr(module, "running_mean"):  # + batch norms
            if module.weight is not None:
                init.ones_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        # Non-persistent buffers are never in a checkpoint: timm layers that own some (e.g. BlurPool2d of
        # resnetblur/resnetaa) recompute them.
        if hasattr(module, "init_non_persistent_buffers"):
            module.init_non_persistent_buffers()

    def _set_gradient_checkpointing(self, enable: bool = True, gradient_checkpointing_func=None, every_n_layers=1):
        # timm checkpoints each residual block with its own `checkpoint_seq`; transformers' function is not needed.
        self.backbone.set_grad_checkpointing(enable)
        self.gradient_checkpointing = enable

    def get_input_embeddings(self):
        # An image model has no token embeddings.
        return None


class InatForImageClassification(InatPreTrainedModel):
    """Any timm backbone + channel attention + MLP head, trained with focal loss (see [`InatConfig`]).

    Stage groups for layer-wise learning rates and progressive unfreezing come from timm's `group_matcher` (see
    `backbone_stage_groups`): [`stage_names`] is e.g. `stem, layer1..layer4, attention, head` for a ResNet and
    `stem, stages.0..stages.3, attention, head` for a ConvNeXt; see also [`stage_modules`],
    [`stage_parameter_names`] and [`stage_parameters`].
    """

    def __init__(self, config: InatConfig):
        super().__init__(config)
        config.validate()  # attributes may have been changed after the config was built
        self.num_labels = config.num_labels

        # No classifier (num_classes=0): timm's forward_head(pre_logits=True) pools and applies the backbone's own
        # pre-logits layers. pretrained=False: in `from_pretrained` the model is built on the meta device, so weights
        # are loaded afterwards (see `from_backbone_pretrained` for ImageNet weights).
        self.backbone = timm.create_model(config.backbone, pretrained=False, num_classes=0, **config.backbone_kwargs)
        # timm has initialised the backbone (kaiming convs, zero-init last BN of each block): post_init() leaves
        # those modules alone (see `_init_weights`). Not on the meta device (from_pretrained), where nothing is
        # initialised yet and backbone tensors missing from a checkpoint must get an init.
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

        # Stage groups: {stage: parameter/buffer names relative to the model}, input -> output.
        groups = backbone_stage_groups(self.backbone)
        self._stage_tensors: OrderedDict[str, list[str]] = OrderedDict(
            (stage, [f"backbone.{n}" for n in names]) for stage, names in groups.items() if stage != "head"
        )
        self._stage_tensors["attention"] = [
            f"attention.{n}" for n, _ in chain(self.attention.named_parameters(), self.attention.named_buffers())
        ]
        self._stage_tensors["head"] = [f"backbone.{n}" for n in groups.get("head", [])] + [
            f"head.{n}" for n, _ in chain(self.head.named_parameters(), self.head.named_buffers())
        ]
        self._no_split_modules = sorted(
            {type(m).__name__ for m in self._stage_block_modules()} or set(InatPreTrainedModel._no_split_modules)
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
    ) -> ImageClassifierOutput | tuple[torch.Tensor, ...]:
        r"""
        Args:
            pixel_values: `[B, 3, H, W]` normalised images (see `create_image_processor`).
            labels: class indices `[B]` (int64, in `[0, num_labels)`) or soft targets `[B, num_labels]` (float, e.g.
                mixup/cutmix; used as given, `config.label_smoothing` only smooths class indices). The loss
                (focal, `config.focal_gamma` / `focal_alpha` / `label_smoothing`) is returned only when given.
            output_hidden_states: also return timm's intermediate features (`forward_intermediates`: for a ResNet
                stem and layer1..4, for a ViT every block as an NCHW map) and the final features after attention.
            return_dict: return an `ImageClassifierOutput` (default) or a tuple `(loss?, logits, hidden_states?)`.
        """
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
        if labels.is_floating_point():
            return
        num_labels = logits.shape[1]
        if labels.device.type != "cpu":
            # No host sync per step on an accelerator: the check runs on the device and fails the next sync point
            # (an out-of-range index would otherwise surface as an opaque device-side assert in the loss).
            torch._assert_async(
                ((labels >= 0) & (labels < num_labels)).all(),
                f"Labels must be class indices in [0, {num_labels}) (num_labels={num_labels}); check that the "
                "dataset's label set matches config.id2label.",
            )
            return
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_labels:
            raise ValueError(
                f"Labels must be class indices in [0, {num_labels}) (num_labels={num_labels}), got values in "
                f"[{low}, {high}]. Check that the dataset's label set matches config.id2label."
            )

    # ------------------------------------------------------------------ stage groups

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Stage groups, input -> output: the backbone's (from timm's `group_matcher`), then `attention`, `head`."""
        return tuple(self._stage_tensors)

    @property
    def backbone_stage_names(self) -> tuple[str, ...]:
        """The backbone's stage groups only (what `frozen_stages` and `layer_decay` count over)."""
        return tuple(s for s in self._stage_tensors if s not in CLASSIFIER_STAGES)

    def stage_parameter_names(self, stages: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Full parameter names (as in `named_parameters()`) per stage, input -> output.

        Every parameter belongs to exactly one of `stage_names`. `stages` selects (and orders) a subset.
        """
        selected = self._select_stages(stages)
        params = dict(self.named_parameters())
        groups = {stage: [n for n in self._stage_tensors[stage] if n in params] for stage in self.stage_names}
        assigned = {n for names in groups.values() for n in names}
        unassigned = [n for n in params if n not in assigned]
        if unassigned:  # parameters added after __init__ would land here; fail loudly instead of dropping them
            raise RuntimeError(f"Parameters outside every stage of {self.stage_names}: {unassigned[:5]}")
        return {stage: groups[stage] for stage in selected}

    def stage_parameters(self, stages: Iterable[str] | None = None) -> dict[str, list[nn.Parameter]]:
        """Parameters per stage (same grouping as `stage_parameter_names`), e.g. for optimizer param groups."""
        params = dict(self.named_parameters())
        return {stage: [params[n] for n in names] for stage, names in self.stage_parameter_names(stages).items()}

    def stage_modules(self, stages: Iterable[str] | None = None) -> dict[str, list[nn.Module]]:
        """The largest modules whose tensors all belong to each stage, input -> output, e.g. to find the norm
        layers of a frozen stage. Tensors a parent holds directly (a ViT's `cls_token`, `pos_embed`) are in
        `stage_parameters` only."""
        stage_of = {n: stage for stage, names in self._stage_tensors.items() for n in names}
        owned: dict[str, list[nn.Module]] = {stage: [] for stage in self._select_stages(stages)}
        inside: list[str] = []  # prefixes of modules already taken (their children are not listed again)
        for name, module in self.named_modules():
            if not name or any(name.startswith(f"{p}.") for p in inside):
                continue
            tensors = [f"{name}.{n}" for n, _ in chain(module.named_parameters(), module.named_buffers())]
            stages_here = {stage_of.get(n) for n in tensors}
            if len(stages_here) == 1:
                (stage,) = stages_here
                inside.append(name)
                if stage in owned:
                    owned[stage].append(module)
        return owned

    def _stage_block_modules(self) -> list[nn.Module]:
        # A stage that is a Sequential/ModuleList of blocks (ResNet layerN, MobileNet blocks.N) contributes its
        # blocks; any other stage module (a ViT block, a ConvNeXt stage) is itself the unit not to split.
        modules = []
        for stage in self.backbone_stage_names:
            for module in self.stage_modules([stage])[stage]:
                modules.extend(module.children() if isinstance(module, nn.Sequential | nn.ModuleList) else [module])
        return [m for m in modules if any(True for _ in m.children())]  # a leaf cannot be split anyway

    def _select_stages(self, stages: Iterable[str] | None) -> list[str]:
        if stages is None:
            return list(self.stage_names)
        stages = [stages] if isinstance(stages, str) else list(stages)
        unknown = [s for s in stages if s not in self._stage_tensors]
        if unknown:
            raise ValueError(f"Unknown stage name(s) {unknown}; valid stage names: {', '.join(self.stage_names)}.")
        return stages

    # ------------------------------------------------------------------ preprocessing

    def create_image_processor(self):
        """The evaluation `BitImageProcessor` for this model's config (see `image_processor_from_config`)."""
        return image_processor_from_config(self.config)

    def save_pretrained(self, save_directory, *args, save_image_processor: bool = True, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus the image processor (`preprocessor_config.json`) unless
        `save_image_processor=False`, so that the directory works with `AutoImageProcessor` and `pipeline`."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if save_image_processor and kwargs.get("is_main_process", True):
            hub_kwargs = {}
            if kwargs.get("push_to_hub"):
                keys = ("repo_id", "token", "commit_message", "private", "create_pr", "revision")
                hub_kwargs = {"push_to_hub": True, **{k: kwargs[k] for k in keys if k in kwargs}}
            self.create_image_processor().save_pretrained(save_directory, **hub_kwargs)

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, refusing a silent label-set change.

        Loading with a different number of labels (`num_labels=`, `id2label=` or a `config=`) re-creates the
        classifier and therefore needs `ignore_mismatched_sizes=True`; without it this raises a `ValueError` that
        says so (transformers' own error does not name the label sets).
        """
        if pretrained_model_name_or_path is not None and not kwargs.get("ignore_mismatched_sizes", False):
            cls._check_label_set(pretrained_model_name_or_path, kwargs)
        loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, info) with output_loading_info=True
        # A damaged weights file of the right size loads without complaint and then predicts NaN: check. Per tensor
        # a sum is cheaper than isfinite().all() and all of them cost one device sync; a NaN/Inf element makes the
        # sum non-finite, and the rare overflowing sum of finite values is cleared by the exact check.
        tensors = [
            (name, tensor.detach())
            for name, tensor in (*model.named_parameters(), *model.named_buffers())
            if tensor.is_floating_point() and tensor.device.type != "meta" and tensor.numel()
        ]
        damaged = []
        if tensors:
            device = tensors[0][1].device
            sums = torch.stack([t.sum(dtype=torch.float32).to(device) for _, t in tensors])
            suspects = torch.nonzero(~sums.isfinite()).flatten().tolist()
            damaged = [tensors[i][0] for i in suspects if not bool(torch.isfinite(tensors[i][1]).all())]
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
            requested = {i: None for i in range(kwargs["num_labels"])}
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
        if all(n is not None for n in new_names) and saved_names != new_names:
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
        """A new model whose backbone starts from ImageNet (or other) timm weights; attention and head are new.

        `from_pretrained` builds on the meta device, so timm weights cannot be loaded in `__init__`; use this to
        start a fine-tuning run instead.

        Args:
            config: the model config (or build one from `config_kwargs`).
            weights: a local `.safetensors` / `.pth` / `.pt` / `.bin` file with a timm state dict (loaded without
                unpickling arbitrary objects: safetensors, or `torch.load(weights_only=True)`), or a timm / Hub
                model name (`"resnet50.a1_in1k"`, `"hf-hub:timm/resnet50.a1_in1k"`; default `config.backbone`).
                With `HF_HUB_OFFLINE=1` a name only works if its weights are in the local Hugging Face cache.
            output_loading_info: also return a dict with `loaded_keys` (backbone tensors copied from the weights),
                `missing_keys` (new tensors: exactly the attention and head ones) and `unexpected_keys` (ignored
                weights: the source model's classifier).

        Raises:
            FileNotFoundError: `weights` looks like a path but no such file exists.
            ValueError: unknown model name, or weights that do not fit `config.backbone`.
            OSError: offline and the weights are not cached.
        """
        if config is None:
            config = InatConfig(**config_kwargs)
        elif config_kwargs:
            raise ValueError(
                f"Pass either a config or config keyword arguments, not both (got {sorted(config_kwargs)})."
            )
        weights = os.fspath(config.backbone if weights is None else weights)
        state_dict = _load_backbone_state_dict(weights, config.backbone_kwargs)

        model = cls(config)
        # timm's own per-architecture adaptation of a state dict, as its pretrained loader applies it: e.g. a ViT's
        # position embeddings resampled for another img_size, original (non-timm) checkpoint layouts converted.
        filter_fn = getattr(sys.modules.get(type(model.backbone).__module__), "checkpoint_filter_fn", None)
        if filter_fn is not None:
            state_dict = filter_fn(state_dict, model.backbone)
        backbone_keys = model.backbone.state_dict().keys()
        # The source model's classifier (e.g. ImageNet `fc`) has no place in a num_classes=0 backbone.
        classifier = model.backbone.pretrained_cfg.get("classifier", "fc")
        unexpected = sorted(k for k in state_dict if k not in backbone_keys)
        dropped = [k for k in unexpected if k.startswith(f"{classifier}.")]
        unexpected_other = [k for k in unexpected if k not in dropped]
        missing = sorted(k for k in backbone_keys if k not in state_dict)
        mismatched = [
            f"{k}: weights {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
            for k, v in model.backbone.state_dict().items()
            if k in state_dict and state_dict[k].shape != v.shape
        ]
        if missing or unexpected_other or mismatched:
            raise ValueError(
                f"The weights {weights!r} do not fit backbone={config.backbone!r}: missing {missing[:5]}, unexpected "
                f"{unexpected_other[:5]}, shape mismatches {mismatched[:5]} (first 5 of each). Use weights of the "
                "same timm architecture as config.backbone."
            )
        model.backbone.load_state_dict({k: v for k, v in state_dict.items() if k in backbone_keys}, strict=True)

        loading_info = {
            "loaded_keys": sorted(f"backbone.{k}" for k in backbone_keys),
            "missing_keys": sorted(k for k in model.state_dict() if not k.startswith("backbone.")),
            "unexpected_keys": dropped,
        }
        logger.info(
            f"Backbone weights loaded from {weights!r}: {len(loading_info['loaded_keys'])} tensors; new (randomly "
            f"initialised): {len(loading_info['missing_keys'])} attention/head tensors; ignored: {dropped}."
        )
        model.eval()  # like from_pretrained; the Trainer switches to train mode itself
        return (model, loading_info) if output_loading_info else model


def _load_backbone_state_dict(weights: str, model_kwargs: dict | None = None) -> dict[str, torch.Tensor]:
    """A timm state dict from a local file or a timm/Hub model name (see `from_backbone_pretrained`)."""
    weights = os.path.expanduser(weights)
    if os.path.isfile(weights):
        return _read_weights_file(weights)
    if os.path.isdir(weights):
        raise FileNotFoundError(f"Backbone weights {weights!r} is a directory; pass the weights file inside it.")
    if weights.endswith(_WEIGHT_FILE_SUFFIXES) or weights.startswith((os.sep, ".")):
        raise FileNotFoundError(f"Backbone weights file not found: {weights!r}")

    # A Hub repo ("hf-hub:timm/resnet50.a1_in1k" or "timm/resnet50.a1_in1k") or a timm name ("resnet50.a1_in1k").
    if weights.startswith("hf-hub:") or "/" in weights:
        hub_id, timm_name = weights.removeprefix("hf-hub:"), f"hf-hub:{weights.removeprefix('hf-hub:')}"
        filenames = ("model.safetensors", "pytorch_model.bin")
    else:
        pretrained_cfg = timm.models.get_pretrained_cfg(weights) if timm.is_model(weights) else None
        if pretrained_cfg is None or not pretrained_cfg.hf_hub_id:
            raise ValueError(
                f"{weights!r} is neither an existing weights file nor a timm model name with pretrained weights; pass "
                "a path to a .safetensors/.pth file or a name such as 'resnet50.a1_in1k' "
                "(see timm.list_pretrained('resnet*'))."
            )
        hub_id, timm_name = pretrained_cfg.hf_hub_id, weights
        filenames = tuple(filter(None, (pretrained_cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin")))

    if _offline():
        # Never let timm reach for the network (without one it retries for a long time): cache or fail now.
        for filename in filenames:
            cached = try_to_load_from_cache(hub_id, filename)
            if isinstance(cached, str):
                return _read_weights_file(cached)
        raise OSError(
            f"HF_HUB_OFFLINE is set and the weights of {weights!r} (Hub repo {hub_id!r}) are not in the local "
            "Hugging Face cache. Pass a local .safetensors/.pth file via `weights=...`, or download the weights "
            "while online."
        )
    return timm.create_model(timm_name, pretrained=True, num_classes=0, **(model_kwargs or {})).state_dict()


def _read_weights_file(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        state_dict = load_safetensors(path, device="cpu")
    else:
        # weights_only=True: tensors and plain containers only, never arbitrary pickled objects.
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        # Training checkpoints wrap the weights: {"state_dict": ...} / {"model": ...}.
        for key in ("state_dict", "model", "module"):
            if isinstance(state_dict, dict) and isinstance(state_dict.get(key), dict):
                state_dict = state_dict[key]
                break
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{path!r} does not contain a state dict (a mapping of names to tensors).")
    # DistributedDataParallel prefixes every key with "module.".
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


def _offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once at import; the environment may have changed since.
    env = any(
        os.environ.get(v, "").upper() in {"1", "ON", "YES", "TRUE"} for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return env or is_offline_mode()


__all__ = ["InatForImageClassification", "InatPreTrainedModel"]
