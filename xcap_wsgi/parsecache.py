"""Parse once per ETag: the element index of recently used documents, per worker process.

::

    cache = ParseCache(max_bytes=2 * 1024 * 1024)
    tree = cache.tree(doc_uri, document)        # parsed on a miss, a lookup on a hit
    body, mime = get_node(tree, selector)       # then a slice
    cache.store(doc_uri, new_etag, new_tree)    # a node write hands on the tree it built
    cache.discard(doc_uri)                      # the document was deleted

Clients read the same few documents again and again, element by element (a buddy list
shown entry by entry, a phone polling its settings), and between two writes a
document's bytes do not change. So the tree of one expat pass (:func:`xcap_wsgi.nodes.parse`)
is kept with its ETag, one per document, and an element, attribute or namespace GET of a
document whose tree is cached parses nothing (issue 10); a node PUT or DELETE splices
into the cached tree and stores the tree of its result, which it parsed anyway to check
what the URI now selects (PE15, PE16, D5), so the next request finds it too.

A hit also compares the document's bytes with the cached tree's (a memory compare, far
cheaper than a parse), so a stale tree is never used even if another program rewrote a
row keeping its ETag. The cache is bounded by the bytes of the documents it holds
(``max_bytes``, least recently used first out; a document larger than the bound is
parsed and not kept); its memory is a multiple of that: the index holds about twenty bytes of
objects per byte of dense XML (a 200 KB buddy list: some 4 MB). ``max_bytes=0`` turns it off. Trees are never changed
once built, so every thread of the worker shares them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from xcap_wsgi.nodes import Tree, parse
from xcap_wsgi.storage import Document

#: Default bound: 2 MiB of documents (a thousand 2 KB buddy lists, or ten of 200 KB), about
#: 40 MB of memory per worker when full.
DEFAULT_MAX_BYTES = 2 * 1024 * 1024


class ParseCache:
    """A bounded, thread-safe LRU of document trees: one per ``doc_uri``, with its ETag."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"node_cache_size must be a number of bytes >= 0, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._trees: OrderedDict[str, tuple[str, Tree]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def tree(self, doc_uri: str, document: Document) -> Tree:
        """The tree of ``document`` (stored at ``doc_uri``): cached, or parsed and kept."""
        with self._lock:
            etag, tree = self._trees.get(doc_uri, ("", None))
            if tree is not None and etag == document.etag and tree.document == document.doc:
                self._trees.move_to_end(doc_uri)
                self.hits += 1
                return tree
            self.misses += 1
        tree = parse(document.doc)  # outside the lock: other threads go on meanwhile
        self.store(doc_uri, document.etag, tree)
        return tree

    def store(self, doc_uri: str, etag: str, tree: Tree) -> None:
        """Keep ``tree`` as the document at ``doc_uri`` with ``etag`` (replacing the
        previous version's), if it fits."""
        size = len(tree.document)
        with self._lock:
            self._drop(doc_uri)
            if size > self.max_bytes:
                return
            self._trees[doc_uri] = (etag, tree)
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._trees)))

    def discard(self, doc_uri: str) -> None:
        """Forget the document at ``doc_uri`` (it was deleted)."""
        with self._lock:
            self._drop(doc_uri)

    def _drop(self, doc_uri: str) -> None:
        entry = self._trees.pop(doc_uri, None)
        if entry is not None:
            self._bytes -= len(entry[1].document)

    def __len__(self) -> int:
        return len(self._trees)

    @property
    def size(self) -> int:
        """Bytes of the documents held."""
        return self._bytes
