"""Where shards are: URLs (local paths, ``s3://``, ``gs://``), globs, and the Dolma folder layout.

The part of a file's path below its glob's root names its shard in every output tree; ``_x`` and ``.x``
names below the root are bookkeeping (ledgers, temporary files) and never input; a document file at
``…/documents/<rel>`` has its attribute set ``<name>`` at ``…/attributes/<name>/<rel>`` (allenai dolma's layout).
"""

from __future__ import annotations

import glob
import os
import re

import smart_open

from dolma.core.errors import UserError
from dolma.io.setup import configure

DOC_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst", ".parquet")


def is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def join(*parts: str) -> str:
    return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts) if p)


def exists(url: str) -> bool:
    if not is_remote(url):
        return os.path.exists(url)
    try:
        with smart_open.open(url, "rb", compression="disable"):
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
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "**", "*")
        found = (p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        return sorted(p for p in found if not _is_bookkeeping(p, pattern))
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
    head, sep, rel = doc_url.rpartition("/documents/")
    if not sep:
        raise UserError(f"{doc_url!r} is not under a 'documents/' folder, so it has no attribute tree")
    return f"{head}/attributes/{name}/{rel}"


def open_url(url: str, mode: str = "rb", **kwargs):
    """Open a URL with smart_open (compression by suffix unless ``compression="disable"``), set up first."""
    configure()
    return smart_open.open(url, mode, **kwargs)
