"""Model registry: `create_model("resnet18", num_classes=10, in_chans=3, stem="small")`.

Importing this package registers VGG, ResNet, GoogLeNet and FCN; "timm/<name>" goes to timm.
"""

from . import fcn, googlenet, resnet, vgg  # noqa: F401  (imported for their registrations)
from .registry import (
    ModelConfigError,
    check_in_chans,
    create_configured_model,
    create_model,
    list_models,
    model_family,
    register_model,
    validate_model_options,
)

__all__ = [
    "check_in_chans",
    "ModelConfigError",
    "create_configured_model",
    "create_model",
    "list_models",
    "model_family",
    "register_model",
    "validate_model_options",
]
