"""Write the flags back: a masked copy of the uncal file, or a DQ sidecar file.

Every output appears whole or not at all: it is written to a temporary file in the
output directory, flushed to disk, then renamed over its final name. Inputs are only
ever opened for reading.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import itertools
import mmap
import os
import shutil
import socket
import threading
from collections.abc import Iterator

import numpy as np
from astropy.io import fits

from . import fitsimage
from .errors import InputError
from .flags import flag_names
from .inventory import ArrayLayout, Exposure
from .processes import alive

PIXELDQ = "PIXELDQ"
# astropy puts the time in the checksum cards' comment by default; a fixed comment keeps
# outputs byte-identical between runs (and between a run and its resumption).
CHECKSUM_COMMENT = "HDU checksum (miripersist)"


def _tmp_prefix() -> str:
    return f".tmp-{socket.gethostname()}-{os.getpid()}-"


def remove_stale_temporaries(directory: str, suffix: str = ".fits") -> list[str]:
    """Delete temporaries (``suffix``: files; ``""``: directories too) that runs left.

    Only those of processes on this host that no longer exist are touched, so a
    concurrent run's temporaries are safe.
    """
    removed = []
    host = f".tmp-{socket.gethostname()}-"
    for name in os.listdir(directory):
        if not (name.startswith(host) and name.endswith(suffix)):
            continue
        pid = name[len(host) :].split("-", 1)[0]
        if not pid.isdigit() or alive(int(pid)):
            continue
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        removed.append(name)
    return removed


_SERIAL = itertools.count()


@contextlib.contextmanager
def atomic_output(final: str) -> Iterator[int]:
    """Yield a descriptor open on a new file beside ``final``; on success fsync and rename it.

    The file is created with the process umask (``mkstemp`` would make it private), under
    a name that says which host and process own it, so that killed runs' leftovers can
    be recognised and removed.
    """
    directory = os.path.dirname(os.path.abspath(final))
    while True:
        tmp = os.path.join(directory, f"{_tmp_prefix()}{next(_SERIAL)}.fits")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # left by an earlier process that had this PID
            continue
    try:
        try:
            yield fd
            os.fsync(fd)
            if hasattr(os, "posix_fadvise"):
                # Written and on disk: let the kernel drop its pages, so that a large run's
                # outputs do not push its inputs (still to be read) out of the page cache.
                # Advice only: a file system that refuses it loses nothing.
                with contextlib.suppress(OSError):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_all(fd: int, buffers: list) -> None:
    """Write every byte of ``buffers`` to ``fd``, however short each ``os.write``."""
    for buf in buffers:
        view = memoryview(buf).cast("B")
        while view:
            view = view[os.write(fd, view) :]


# Direct I/O moves whole pages between a page-aligned buffer and the disk.
_PAGE = mmap.PAGESIZE
_staging = threading.local()


def _staging_buffer(nbytes: int) -> memoryview:
    """A page-aligned buffer of at least ``nbytes``, one per thread, reused file after file."""
    buffer = getattr(_staging, "buffer", None)
    if buffer is None or len(buffer) < nbytes:
        buffer = mmap.mmap(-1, nbytes + (-nbytes % _PAGE))
        _staging.buffer = buffer
    return memoryview(buffer)[:nbytes]


def _set_direct(fd: int, on: bool) -> bool:
    """Switch direct I/O on or off for ``fd``; False where the system or file system has none."""
    import fcntl  # POSIX only, as O_DIRECT

    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT if on else flags & ~os.O_DIRECT)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    return True


def _write_staged(fd: int, data: memoryview) -> None:
    """Write ``data`` (a staging buffer) at the descriptor's position, which is 0.

    The whole pages go straight to the disk (``O_DIRECT``): a DQ image written through
    the page cache costs 1 to 6 ms of CPU in page allocation and reclaim, and the page
    cache then holds it for nothing. The last partial page is written normally; the
    caller's fsync makes all of it durable. Where direct I/O is refused (tmpfs, macOS,
    some network file systems), everything is written normally. (Copies keep
    ``copy_file_range``: with direct I/O they took the same time, disk-bound, and the
    kernel copy clones where the file system can.)
    """
    written = 0
    bulk = len(data) - len(data) % _PAGE
    if bulk and hasattr(os, "O_DIRECT") and _set_direct(fd, True):
        try:
            while written < bulk:
                done = os.write(fd, data[written:bulk])
                written += done
                if done % _PAGE:
                    break  # a short write leaves the rest unaligned
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # the alignment this file system wants is another
                raise
        finally:
            _set_direct(fd, False)
    write_all(fd, [data[written:]])


def copy_range(src: int, dst: int, offset: int, count: int) -> None:
    """Append ``count`` bytes of ``src`` from ``offset`` to ``dst``, in the kernel where it can."""
    try:
        if not hasattr(os, "copy_file_range"):  # macOS, Windows
            raise OSError(errno.ENOSYS, "no copy_file_range")
        while count > 0:
            done = os.copy_file_range(src, dst, count, offset)
            if done == 0:
                raise OSError(errno.EIO, "input file ended early")
            offset += done
            count -= done
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        while count > 0:
            chunk = os.pread(src, min(count, 1 << 22), offset)
            if not chunk:
                raise OSError(errno.EIO, "input file ended early") from None
            write_all(dst, [chunk])
            offset += len(chunk)
            count -= len(chunk)


def _existing_pixeldq(src: int, path: str, layout: ArrayLayout) -> np.ndarray:
    """The input's PIXELDQ values as uint32, read where the inventory found them.

    The inventory checked the layout: a 2-D image of unscaled integers of 8, 16 or 32
    bits. Values convert as ``numpy.asarray(hdu.data, dtype=numpy.uint32)`` would.
    """
    raw = os.pread(src, layout.nbytes, layout.offset)
    if len(raw) != layout.nbytes:
        raise InputError(f"{path}: file is truncated (PIXELDQ data ends early)")
    stored = np.frombuffer(raw, dtype=layout.dtype).reshape(layout.shape)
    if layout.bitpix == 32 and layout.bzero == 1 << 31:
        # uint32 as FITS stores it: the stored word with its top bit flipped.
        return (stored.view(">u4") ^ np.uint32(1 << 31)).astype(np.uint32)
    # Negative values wrap, as numpy's cast of astropy's signed data does.
    return (stored.astype(np.int64) + int(layout.bzero)).astype(np.uint32)


def provenance(header: fits.Header, provenance_cards: dict[str, object]) -> None:
    """Record which tool, version and parameters made the flags."""
    for key, value in provenance_cards.items():
        header[key] = value
    header.add_history("miripersist: persistence flags from saturation in earlier exposures")
    flags = provenance_cards.get("MPFLAGS")
    if flags is not None:
        header.add_history(f"miripersist: flags set are {flag_names(int(flags[0]))}")


@functools.lru_cache(maxsize=64)
def _template(
    kind: str, shape: tuple[int, int], cards: tuple[tuple[str, object], ...], dtype: str
) -> bytes:
    """Serialised header of an output image with its provenance; made once a run."""
    header = fitsimage.image_header(
        shape, primary=kind == "sidecar", extname=PIXELDQ, dtype=np.dtype(dtype)
    )
    provenance(header, dict(cards))
    return fitsimage.serialise(header, CHECKSUM_COMMENT if kind == "copy" else None)


def _header(
    kind: str, shape: tuple[int, int], cards: dict[str, object], dtype: str = "uint32"
) -> bytes:
    # The count and the digest differ per file; everything else is fixed for the run, so
    # the template is serialised once and only those cards are replaced.
    fixed = {k: (_PLACEHOLDERS[k], v[1]) if k in _PLACEHOLDERS else v for k, v in cards.items()}
    head = _template(kind, tuple(shape), tuple(fixed.items()), dtype)
    for key in _PLACEHOLDERS:
        if key in cards:
            head = fitsimage.replace_card(head, key, *cards[key])
    return head


#: The cards of an output that vary file by file, and what the run's template holds for them.
_PLACEHOLDERS = {"MPNMASK": 0, "MPRESULT": "0" * 32}


def write_copy(exposure: Exposure, dq: np.ndarray, final: str, cards: dict[str, object]) -> None:
    """Byte-copy the input and OR ``dq`` into its PIXELDQ (appended or replaced).

    An input's PIXELDQ (checked by the inventory, which recorded where it lies) is cut out
    of the copy and its values ORed into the new PIXELDQ appended at the end.

    Parameters
    ----------
    exposure : Exposure
        The input.
    dq : ndarray of uint32, shape (ysize, xsize)
        Flags to OR in.
    final : str
        Output path.
    cards : dict
        Provenance header keywords for the PIXELDQ extension.
    """
    path, layout = exposure.path, exposure.pixeldq
    if layout is not None and layout.shape != dq.shape:
        raise ValueError(f"{path}: PIXELDQ shape {layout.shape} differs from the DQ {dq.shape}")
    src = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(src).st_size
        if layout is None:
            values, pieces = dq, [(0, size)]
        else:
            # The PIXELDQ's place is the inventory's: the file must still be the one it read.
            if size != exposure.size:
                raise InputError(
                    f"{path}: file changed during the run ({exposure.size} bytes at the start, "
                    f"now {size})"
                )
            values = _existing_pixeldq(src, path, layout) | dq
            pieces = [(0, layout.header_offset), (layout.end, size - layout.end)]
        head = _header("copy", dq.shape, cards)
        hdu = _staging_buffer(fitsimage.hdu_size(head))
        fitsimage.hdu_into(hdu, head, values, CHECKSUM_COMMENT)
        with atomic_output(final) as dst:
            for offset, count in pieces:
                copy_range(src, dst, offset, count)
            write_all(dst, [hdu])
    finally:
        os.close(src)


def write_sidecar(
    dq: np.ndarray, final: str, cards: dict[str, object], compress: bool = False
) -> None:
    """Write a DQ image for dq_init's ``user_supplied_dq``, in the type of ``dq``.

    dq_init reads it with ``astropy.io.fits.getdata`` and casts it to uint32, so any
    unsigned type works: the smallest that holds the flags keeps the file small (uint8,
    1 MB for a full frame, for the default flags). With ``compress`` the image is
    tile-compressed (RICE) in extension 1 behind an empty primary HDU, where ``getdata``
    finds it: tens of kilobytes for a sparse mask.
    """
    if compress:
        _write_compressed(dq, final, cards)
        return
    # No CHECKSUM here: the data sum costs a tenth of the whole sidecar job, for a small
    # derived file that dq_init does not verify and a rerun remakes; copies keep the
    # convention of the uncal files they extend.
    head = _header("sidecar", dq.shape, cards, dq.dtype.name)
    hdu = _staging_buffer(fitsimage.hdu_size(head))
    fitsimage.hdu_into(hdu, head, dq)
    with atomic_output(final) as fd:
        _write_staged(fd, hdu)


def _write_compressed(dq: np.ndarray, final: str, cards: dict[str, object]) -> None:
    # Tiles of 64 whole rows: a third of the time of astropy's default one-row tiles
    # (10 ms instead of 32 ms a full frame) and a smaller file (20 kB instead of 32 kB).
    tile = (min(64, dq.shape[0]), dq.shape[1])
    hdu = fits.CompImageHDU(data=dq, compression_type="RICE_1", name=PIXELDQ, tile_shape=tile)
    provenance(hdu.header, cards)
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    with atomic_output(final) as fd:
        write_all(fd, [buffer.getbuffer()])
