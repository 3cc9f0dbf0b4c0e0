"""nas: platform-aware neural architecture search for mobile CNNs.

The architecture spec (`nas.arch.Arch`) is the value every stage passes along:
space → sample → latency → accuracy → search → NetAdapt → export.
"""

from nas.arch import Arch, SpecError, make_divisible
from nas.errors import NasError

__version__ = "0.1.0"


def load(arch: "str | Arch", weights: "str | None" = None):
    """Rebuild a model from a spec (an `Arch`, a JSON file path, or a zoo name) and optional weights.

    Weights are read with `torch.load(weights_only=True)`: a plain `state_dict`, never a pickle of code."""
    from pathlib import Path

    from nas import zoo
    from nas.io import read_state_dict
    from nas.model import build
    from nas.sources import read_arch

    if isinstance(arch, Arch):
        spec = arch
    elif Path(arch).suffix == ".json" or Path(arch).is_file():
        spec = read_arch(arch)  # bounded reader; a spec past the limits is refused before torch builds anything
    else:
        spec = zoo.get(arch)
    net = build(spec)
    if weights is not None:
        state = read_state_dict(weights)
        try:
            net.load_state_dict(state)
        except (RuntimeError, TypeError) as err:
            lines = str(err).strip().splitlines()
            why = lines[-1] if lines else err
            raise NasError(f"weights {weights} do not fit {spec.name or 'the architecture'}: {why}") from None
    return net


__all__ = ["Arch", "NasError", "SpecError", "__version__", "load", "make_divisible"]
