"""Search spaces: each one a product of categorical decisions with its own string format."""

from harness.spaces.darts import DartsSpace
from harness.spaces.nb201 import NB201Space
from harness.spaces.nbmacro import MacroSpace
from harness.spaces.subset import SubsetSpace
from harness.spaces.toy import ToySpace

__all__ = ["DartsSpace", "MacroSpace", "NB201Space", "SubsetSpace", "ToySpace"]
