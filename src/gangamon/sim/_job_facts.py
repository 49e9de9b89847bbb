"""What DIRAC records of a simulated job besides its path, each fact drawn from the job's id
alone: the site it runs at, its worker node, its CPU figures, the files it uploads, its output
sandbox. The same id gives the same facts in every run and process. Pure.
"""

from __future__ import annotations

import functools
import hashlib
import io
import tarfile
import uuid
from typing import TypeVar

#: Sites as DIRAC names them (<grid>.<site>.<country>).
SITES = (
    "LCG.CERN.cern",
    "LCG.RAL.uk",
    "LCG.CNAF.it",
    "LCG.GRIDKA.de",
    "LCG.IN2P3.fr",
    "LCG.NIKHEF.nl",
    "LCG.PIC.es",
)
#: The storage elements of each site's files (a file has one or two replicas).
SITE_SES = {site: f"{site.split('.')[1]}-USER" for site in SITES}
#: Where the simulated user's files live (DIRAC's /<vo>/user/<initial>/<user> convention).
LFN_ROOT = "/gangamon/user/g/gangamon"


_MASK = (1 << 64) - 1
T = TypeVar("T")


def _unit(fact: int, job_id: int) -> float:
    """A number in [0, 1) for fact number `fact` of the job: SplitMix64 of the two, a few
    integer operations (every job's site is drawn when 10^5 jobs are made)."""
    z = (job_id * 0x9E3779B97F4A7C15 + fact * 0xD1B54A32D192ED03) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) / 2.0**64


def _pick(fact: int, job_id: int, choices: tuple[T, ...]) -> T:
    return choices[int(_unit(fact, job_id) * len(choices))]


def site_of(job_id: int) -> str:
    return _pick(1, job_id, SITES)


def host_of(job_id: int) -> str:
    site = site_of(job_id)
    return f"wn{1 + int(_unit(2, job_id) * 400):03d}.{site.split('.')[1].lower()}.sim"


def cpu_factor(job_id: int) -> float:
    """DIRAC's CPUNormalizationFactor of the job's worker node (HS06 per core)."""
    return round(8.0 + 16.0 * _unit(3, job_id), 1)


def cpu_seconds(job_id: int, wall_seconds: float) -> float:
    """The CPU seconds the job used in `wall_seconds` of running (60-100 % efficient)."""
    return round(wall_seconds * (0.6 + 0.4 * _unit(4, job_id)), 1)


def output_lfns(job_id: int) -> tuple[str, ...]:
    """The files a Done job uploaded: none for half the jobs, one or two for the others."""
    count = _pick(5, job_id, (0, 0, 1, 2))
    return tuple(f"{LFN_ROOT}/{job_id}/output_{i}.dat" for i in range(count))


def job_of_lfn(lfn: str) -> int | None:
    """The job whose output `lfn` would be, by its path; None for any other path."""
    head, _, rest = lfn.rpartition("/")
    directory, _, number = head.rpartition("/")
    if directory != LFN_ROOT or not number.isdigit() or not rest.startswith("output_"):
        return None
    return int(number)


def file_size(lfn: str) -> int:
    return int.from_bytes(hashlib.md5(lfn.encode()).digest()[:3], "big") + 1024


def guid_of(lfn: str) -> str:
    """The file's GUID, upper case as DIRAC's catalogue keeps them."""
    return str(uuid.UUID(bytes=hashlib.md5(lfn.encode()).digest())).upper()


def checksum_of(lfn: str) -> str:
    """An Adler-32 as the catalogue shows it: eight hex digits."""
    return hashlib.sha1(lfn.encode()).hexdigest()[:8]


def replicas_of(job_id: int, lfn: str) -> tuple[str, ...]:
    """The storage elements holding `lfn`: its job's site's, and for some files another."""
    home = SITE_SES[site_of(job_id)]
    fact = 6 + 2 * int(lfn.rpartition("_")[2].removesuffix(".dat") or 0)
    others = tuple(se for se in SITE_SES.values() if se != home)
    return (home, _pick(fact, job_id, others)) if _unit(fact + 1, job_id) < 0.3 else (home,)


@functools.lru_cache(maxsize=1024)
def sandbox_tarball(job_id: int) -> bytes:
    """The job's output sandbox, a bz2 tarball of std.out and the application's log as
    Ganga's Executable leaves it (Ganga links `stdout` to its `Ganga_*.log`); the same
    bytes every time (the members have a fixed time) so that its MD5, which names it, is
    the job's."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as tar:
        for name, text in sandbox_files(job_id).items():
            content = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def sandbox_files(job_id: int) -> dict[str, str]:
    """The files of the job's output sandbox, by name."""
    return {
        "std.out": f"output of simulated DIRAC job {job_id}\n",
        "Ganga_Executable.log": f"simulated DIRAC job {job_id} ran on {host_of(job_id)}\n",
    }
