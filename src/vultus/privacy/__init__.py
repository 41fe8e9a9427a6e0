"""Privacy tools: anonymisation (`anonymize`: cover faces) and cloaking (`cloak`: keep faces recognisable to
people but not to face recognisers; needs the privacy extra, torch, imported only when a face is cloaked).

`vultus.privacy.cloak` is the function; the module it lives in is reached by `from vultus.privacy.cloak import
...` (an `import vultus.privacy.cloak as m` finds the function, as Python looks the name up on the package)."""

from vultus.privacy.cloak import Cloaked, CloakOptions, CloakResult, FaceCloak, cloak, cloak_paths

__all__ = ["CloakOptions", "CloakResult", "Cloaked", "FaceCloak", "cloak", "cloak_paths"]
