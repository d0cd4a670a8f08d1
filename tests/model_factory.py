"""Random-init models of the real architectures, written as the trainer writes them (tests only)."""
from __future__ import annotations

from pathlib import Path


def bundled_task_info(task: str):
    """The bundled teacher card's task fields (what the trainer copies into a new card), if any."""
    from medkd_desktop.models.card import ModelCard, TaskInfo
    from medkd_desktop.models.registry import BUNDLED_DIR

    card = Path(BUNDLED_DIR) / task / "teacher.json"
    return ModelCard.load(card).task_info if card.is_file() else TaskInfo()


def write_random_model(root: Path, task: str, role: str, arch: str, classes, spec, *, arch_kwargs=None, seed: int = 0,
                       prepare=None, **card_fields):
    """A real architecture with random weights, saved as the trainer saves a model: safetensors +
    card in ``root/task``. ``prepare(model)`` may adjust weights before saving; ``card_fields``
    fill the card (metrics, caveats, ...). Tests use it so no trained weights are needed."""
    import torch

    from medkd_desktop.models.architectures import create_arch
    from medkd_desktop.models.card import ModelCard
    from medkd_desktop.models.weights import save_weights

    kwargs = dict(arch_kwargs or {})
    folder = Path(root) / task
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = create_arch(arch, num_classes=len(classes), in_chans=spec.channels, **kwargs).eval()
    if prepare is not None:
        with torch.no_grad():
            prepare(model)
    sha = save_weights(model, folder / f"{role}.safetensors")
    fields = {"name": f"{arch} {role}", "target_layers": {"stages": list(model.stage_names)},
              "task_info": bundled_task_info(task), **card_fields}
    card = ModelCard(id=f"{task}/{role}", task=task, role=role, architecture=arch, arch_kwargs=kwargs,
                     classes=list(classes), input=spec, weights_file=f"{role}.safetensors", sha256=sha, **fields)
    card.save(folder / f"{role}.json")
    return card


def blob_features(channels: int, size: int, corner: str, batch: int = 2, seed: int = 0):
    """Stage features with low noise everywhere and a strong response in one quadrant ("tl", "br"...):
    a map with one salient region, for the DFS-Ex mask and dfkd loss tests."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.randn(batch, channels, size, size, generator=g)
    h = size // 2
    rows = slice(0, h) if corner[0] == "t" else slice(h, size)
    cols = slice(0, h) if corner[1] == "l" else slice(h, size)
    x[:, :, rows, cols] += 3.0
    return x
