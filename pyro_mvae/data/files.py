"""Files of the benchmark data sets that torchvision does not ship: found in their folder, else
downloaded with torchvision's ``download_url``, else a :class:`~pyro_mvae.errors.DataNotFoundError` that says
which files to place where."""

from dataclasses import dataclass
from pathlib import Path

from pyro_mvae.errors import DataNotFoundError


@dataclass(frozen=True)
class Files:
    """The files of one data set: ``names`` in ``ROOT/<folder>/``, each downloadable from
    ``url_base + name``; ``source`` cites where they come from."""

    folder: str
    names: tuple[str, ...]
    url_base: str
    source: str

    def locate(self, root: Path, download: bool) -> list[Path]:
        """The paths of ``names`` under ``root/<folder>/``, downloading the absent ones when
        ``download`` is true.

        Raises:
            DataNotFoundError: when a file is absent and cannot be downloaded; the message names
                every file, the folder it belongs in and the address to get it from.
        """
        folder = root / self.folder
        paths = [folder / name for name in self.names]
        absent = [p for p in paths if not p.is_file()]
        if absent and download:
            self._download(folder, absent)
        if any(not p.is_file() for p in paths):
            raise DataNotFoundError(
                f"{self.folder} needs the files {', '.join(self.names)} in {folder}/; "
                f"{'the download failed' if download else 'data.download=false'}. Get them from "
                f"{self.url_base} ({self.source}) and place them there, or point data.root / PYRO_MVAE_DATA "
                f"at a folder that holds {self.folder}/, or allow the download (data.download=true) "
                "on a machine with internet.")
        return paths

    def _download(self, folder: Path, absent: list[Path]) -> None:
        from torchvision.datasets.utils import download_url

        for path in absent:
            try:
                download_url(self.url_base + path.name, str(folder), filename=path.name)
            except (OSError, RuntimeError):  # no network, or a refused address: said by locate()
                path.unlink(missing_ok=True)
                return
