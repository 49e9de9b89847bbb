"""WorkloadManagement/SandboxStore over simulated jobs: where each finished job's output
sandbox lies, and its download. Sans-IO."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ..backends.dirac._states import DiracStatus as D
from ..backends.dirac._wire import s_error, s_ok
from . import _job_facts as facts
from ._dirac_cfg import GROUP, SANDBOX_SE, USER
from ._dirac_model import SimJob
from ._dirac_service import Result, dispatch

#: The statuses a job has its output sandbox in (the job wrapper uploaded it).
_WRAPPER_DONE = frozenset({D.DONE, D.FAILED, D.COMPLETED})


class SandboxStore:
    """WorkloadManagement/SandboxStore: each finished job's output sandbox, and its download.

    With `pfns="dirac"` sandboxes are named as DIRAC's SandboxStore names them,
    `SB:<SE>|/SandBox/<u>/<user>.<group>/<md5[:3]>/<md5[3:6]>/<md5>.tar.bz2` (the MD5 of the
    tarball), for DIRAC's StorageElement client to fetch from this service (DISET
    `transfer_toClient`, or `streamToClient` over HTTPS). With `pfns="url"` the PFN is an
    https URL of the tarball on this server (`<base_url>/sandbox/<job id>.tar.bz2`).
    """

    def __init__(
        self,
        jobs: Mapping[int, SimJob],
        base_url: str,
        pfns: Literal["dirac", "url"] = "dirac",
    ) -> None:
        self.jobs, self.base_url, self.pfns = jobs, base_url, pfns
        #: The sandboxes named so far, by PFN: DIRAC too serves only registered sandboxes.
        #: Written from handler threads: one dict store each, atomic.
        self._registered: dict[str, int] = {}
        self.methods: dict[str, Callable[..., Result]] = {
            "getSandboxesAssignedToEntity": self._assigned,
            "transfer_toClient": self._transfer,
            "streamToClient": self._transfer,
        }

    def call(self, method: str, args: list[Any], now: float) -> Result:
        return dispatch(self.methods, method, args, now)

    @staticmethod
    def pfn(job_id: int) -> str:
        md5 = hashlib.md5(facts.sandbox_tarball(job_id)).hexdigest()
        owner = f"{USER}.{GROUP}"
        return f"/SandBox/{owner[0]}/{owner}/{md5[:3]}/{md5[3:6]}/{md5}.tar.bz2"

    def tarball(self, pfn: str) -> bytes | None:
        """The registered sandbox `pfn` names (a PFN, or any URL ending in one)."""
        start = pfn.find("/SandBox/")
        job_id = self._registered.get(pfn[start:]) if start >= 0 else None
        return None if job_id is None else facts.sandbox_tarball(job_id)

    def _assigned(self, now: float, entity: object) -> Result:
        kind, _, number = str(entity).partition(":")
        job = self.jobs.get(int(number)) if kind == "Job" and number.isdigit() else None
        if job is None or job.state_at(now)[0] not in _WRAPPER_DONE:
            return s_ok({})
        if self.pfns == "url":
            return s_ok({"Output": [f"SB:{SANDBOX_SE}|{self.base_url}/sandbox/{job.id}.tar.bz2"]})
        pfn = self.pfn(job.id)
        self._registered[pfn] = job.id
        return s_ok({"Output": [f"SB:{SANDBOX_SE}|{pfn}"]})

    def _transfer(self, now: float, file_id: object, token: object = "") -> Result:
        # DIRAC's DIPStorage sends the whole URL, dips://host:port/<service path><PFN>.
        tarball = self.tarball(str(file_id))
        return s_error("Sandbox does not exist") if tarball is None else s_ok(tarball)
