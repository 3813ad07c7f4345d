"""Where shards are: URLs (local paths, ``s3://``, ``gs://``), globs, and the Dolma folder layout.

The part of a file's path below its glob's root names its shard in every output tree; ``_x`` and ``.x``
names below the root are bookkeeping (ledgers, temporary files) and never input; a document file at
``…/documents/<rel>`` has its attribute set ``<name>`` at ``…/attributes/<name>/<rel>`` (allenai dolma's layout).
"""

from __future__ import annotations

import bz2
import lzma
import os
import re

import zstandard
from isal import igzip

from dolma.core.errors import UserError
from dolma.io.setup import configure, smart_open_module

DOC_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst", ".parquet")


def is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def join(*parts: str) -> str:
    return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts) if p)


def exists(url: str) -> bool:
    if not is_remote(url):
        return os.path.exists(url)
    try:
        with open_url(url, "rb", compression="disable"):
            return True
    except (OSError, ValueError, KeyError):
        return False
    except Exception as e:  # botocore / google clients raise their own not-found types
        if "404" in str(e) or "NoSuchKey" in str(e) or "Not Found" in str(e):
            return False
        raise


def list_files(pattern: str) -> list[str]:
    """Files matching a glob (``**`` allowed) or all files under a directory, sorted for determinism."""
    if not is_remote(pattern):
        return _local_files(pattern)
    scheme, _, rest = pattern.partition("://")
    bucket, _, key_pattern = rest.partition("/")
    has_glob = any(c in key_pattern for c in "*?[")
    prefix = key_pattern.split("*")[0].split("?")[0].split("[")[0] if has_glob else key_pattern
    if scheme == "s3":
        import boto3

        client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
        keys = [
            obj["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
    elif scheme == "gs":
        from google.cloud import storage

        keys = [b.name for b in storage.Client().list_blobs(bucket, prefix=prefix)]
    else:
        raise UserError(f"unsupported URL scheme {scheme!r} in {pattern!r} (use a local path, s3:// or gs://)")
    if has_glob:
        matches = _glob_regex(key_pattern).fullmatch
        keys = [k for k in keys if matches(k)]
    urls = sorted(f"{scheme}://{bucket}/{k}" for k in keys if not k.endswith("/"))
    return [u for u in urls if not _is_bookkeeping(u, pattern)]


_GLOB_CHARS = re.compile(r"[*?\[]")


def _local_files(pattern: str) -> list[str]:
    """Local files matching a glob, or all under a folder: a walk that follows folder links but enters each
    real folder once (a link loop such as ``here -> .`` is walked once, not for ever) and refuses a link that
    leads out of the input's root (``DOLMA_FOLLOW_LINKS=any`` allows it); bookkeeping folders are not entered."""
    if os.path.isdir(pattern):
        root, wanted = pattern, None
    elif not _GLOB_CHARS.search(pattern):
        return [pattern] if os.path.isfile(pattern) else []
    else:
        head = pattern[: _GLOB_CHARS.search(pattern).start()]
        root = head.rsplit("/", 1)[0] if "/" in head else ""
        wanted = _glob_regex(pattern[len(root) + 1 :] if root else pattern).fullmatch
    top = root or "."
    real_top = os.path.realpath(top)
    anywhere = os.environ.get("DOLMA_FOLLOW_LINKS") == "any"
    seen: set[str] = set()
    found = []
    for folder, dirs, names in os.walk(top, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        if not anywhere and real != real_top and not real.startswith(real_top.rstrip("/") + "/"):
            raise UserError(
                f"{folder!r} links to {real!r}, outside the input {top!r}: give that folder as the input, "
                "or set DOLMA_FOLLOW_LINKS=any to follow links anywhere"
            )
        dirs[:] = sorted(d for d in dirs if d[:1] not in ("_", "."))
        rel_folder = os.path.relpath(folder, top)
        for name in names:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            path = os.path.join(root, rel) if root else rel
            if (wanted is None or wanted(rel)) and _is_input_file(path):
                found.append(path)
    return sorted(p for p in found if not _is_bookkeeping(p, pattern))


def _is_input_file(path: str) -> bool:
    """A regular file, or a link that leads nowhere (listed, so its task quarantines it as unreadable rather
    than the file vanishing from the run); a pipe, socket or device among the inputs is an error."""
    if os.path.isfile(path):
        return True
    if os.path.islink(path) and not os.path.exists(path):
        return True
    if os.path.isdir(path):
        return False
    raise UserError(f"input {path!r} is not a regular file (a pipe, socket or device); move it out of the input")


def _glob_regex(pattern: str) -> re.Pattern:
    """Local glob semantics for object keys: ``*`` and ``?`` stay inside one folder, ``**/`` spans any number
    of folders (none included), ``[...]`` is a character class."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            out.append("[" + pattern[i + 1 : end].replace("!", "^", 1) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _is_bookkeeping(path: str, pattern: str) -> bool:
    """Below the pattern's root, ledgers and temporary files (``_x`` and ``.x`` names) are never input."""
    return any(part[:1] in ("_", ".") for part in relative_to_root(path, pattern).split("/"))


def document_files(pattern: str) -> list[str]:
    files = [f for f in list_files(pattern) if f.endswith(DOC_SUFFIXES)]
    if not files:
        raise UserError(f"no document files ({', '.join(DOC_SUFFIXES)}) match {pattern!r}")
    return files


def relative_to_root(path: str, pattern: str) -> str:
    """The part of ``path`` below the non-glob prefix of ``pattern``: it names the shard in every output tree."""
    root = pattern.split("*")[0].split("?")[0].split("[")[0]
    if root == path:
        return os.path.basename(path)
    if root == pattern and path.startswith(root.rstrip("/") + "/"):  # a folder given without a glob
        root = root.rstrip("/") + "/"
    root = root if root.endswith("/") else root.rsplit("/", 1)[0] + "/"
    return path[len(root) :] if path.startswith(root) else os.path.basename(path)


def strip_suffix(rel: str) -> str:
    for suffix in sorted(DOC_SUFFIXES, key=len, reverse=True):
        if rel.endswith(suffix):
            return rel[: -len(suffix)]
    return rel


def attributes_url(doc_url: str, name: str) -> str:
    """allenai dolma's layout: ``…/documents/<rel>`` has its attributes at ``…/attributes/<name>/<rel>``."""
    if doc_url.startswith("documents/"):  # a relative path from the folder that holds documents/
        return f"attributes/{name}/{doc_url[len('documents/') :]}"
    head, sep, rel = doc_url.rpartition("/documents/")
    if not sep:
        raise UserError(f"{doc_url!r} is not under a 'documents/' folder, so it has no attribute tree")
    return f"{head}/attributes/{name}/{rel}"


LOCAL_OPENERS = {".gz": igzip.open, ".zst": zstandard.open, ".bz2": bz2.open, ".xz": lzma.open}


def open_url(url: str, mode: str = "rb", compression: str = "infer_from_extension", **kwargs):
    """Open a URL, decompressing by suffix (``.gz``, ``.zst``, ``.bz2``, ``.xz``) unless
    ``compression="disable"``: a local path with the standard library and the codecs' own ``open`` (gzip
    reads through ISA-L), a remote one with smart_open (imported then: see :mod:`dolma.io.setup`)."""
    configure()
    if is_remote(url):
        return smart_open_module().open(url, mode, compression=compression, **kwargs)
    path = url[len("file://") :] if url.startswith("file://") else url
    opener = LOCAL_OPENERS.get(os.path.splitext(path)[1]) if compression != "disable" else None
    if opener is igzip.open and "w" in mode:
        import gzip

        opener = gzip.open  # the standard library's writer (ISA-L's compresses differently)
    return (opener or open)(path, mode, **kwargs)


def identity(url: str) -> str:
    """What tells two versions of a file apart without reading it: size and modification time (local),
    size and ETag (S3) or generation (GCS); ``missing`` when there is no such file."""
    if not is_remote(url):
        try:
            st = os.stat(url)
        except FileNotFoundError:
            return "missing"
        return f"{st.st_size}:{st.st_mtime_ns}"
    scheme, _, rest = url.partition("://")
    bucket, _, key = rest.partition("/")
    try:
        if scheme == "s3":
            import boto3

            client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
            head = client.head_object(Bucket=bucket, Key=key)
            return f"{head['ContentLength']}:{head['ETag']}"
        if scheme == "gs":
            from google.cloud import storage

            blob = storage.Client().bucket(bucket).get_blob(key)
            return "missing" if blob is None else f"{blob.size}:{blob.generation}"
    except Exception as e:  # the clients raise their own not-found types
        if "404" in str(e) or "NoSuchKey" in str(e) or "Not Found" in str(e):
            return "missing"
        raise
    raise UserError(f"unsupported URL scheme {scheme!r} in {url!r} (use a local path, s3:// or gs://)")


def remove(url: str) -> None:
    """Delete a file if it exists (local or object storage)."""
    if not is_remote(url):
        if os.path.exists(url):
            os.remove(url)
        return
    scheme, _, rest = url.partition("://")
    bucket, _, key = rest.partition("/")
    if scheme == "s3":
        import boto3

        boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None).delete_object(
            Bucket=bucket, Key=key
        )
    elif scheme == "gs":
        from google.cloud import storage

        storage.Client().bucket(bucket).blob(key).delete()


def refuse_output_in_input(pattern: str, output: str, where: str) -> None:
    """An output that would overwrite its input or be read back as input is refused: the output folder equal
    to an input file or folder, inside an input folder (read recursively), or inside the root of a recursive
    glob (``**``), or equal to the folder a glob lists."""
    norm = (lambda u: u.rstrip("/")) if is_remote(pattern) else (lambda u: os.path.abspath(u).rstrip("/"))
    out = norm(output)
    if any(c in pattern for c in "*?["):
        root = norm(pattern.split("*")[0].split("?")[0].split("[")[0].rsplit("/", 1)[0] or ".")
        clash = out == root or ("**" in pattern and out.startswith(root + "/"))
    elif not is_remote(pattern) and os.path.isdir(pattern):
        root = norm(pattern)
        clash = out == root or out.startswith(root + "/")
    else:
        clash = out == norm(pattern)
    if clash:
        raise UserError(f"{where}: output {output!r} is inside its input {pattern!r}; write it somewhere else")


def require_attributes(doc_url: str, names: list[str], where: str) -> None:
    """Every named attribute set must exist for the document file: a missing one (a typo, a stage not run
    yet) is an error naming it, never a shard of quarantined documents."""
    for name in names:
        url = attributes_url(doc_url, name)
        if not exists(url):
            head = doc_url.rpartition("/documents/")[0]
            raise UserError(
                f"{where}: attribute set {name!r} does not exist for {doc_url} (no {url}; sets there: "
                f"{', '.join(_sets(head)) or 'none'})"
            )


def _sets(head: str) -> list[str]:
    if is_remote(head):
        return []
    folder = os.path.join(head, "attributes")
    return sorted(n for n in os.listdir(folder) if not n.startswith(("_", "."))) if os.path.isdir(folder) else []
