"""A trained network's weights loaded into a configuration that only adds modules to it."""
import torch

from engines.model.network import Uniface


def carried_pair(shallow_cfg, deeper_cfg, added_prefix: str) -> tuple[Uniface, Uniface]:
    """(shallow, deeper) networks in eval mode, the deeper one holding the shallow one's seeded
    weights; every tensor it lacks must be an added one, under `added_prefix`."""
    torch.manual_seed(0)
    base = Uniface(shallow_cfg).eval()
    deeper = Uniface(deeper_cfg).eval()
    missing, unexpected = deeper.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith(added_prefix) for k in missing)
    return base, deeper
