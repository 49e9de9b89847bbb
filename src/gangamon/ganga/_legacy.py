"""Renamed `_adapter`; `poll_interval` is in `_family`. Kept while `_dirac` imports
`poll_interval` from here."""

from ._family import poll_interval as poll_interval
