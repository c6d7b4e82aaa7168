"""The AudioSet-format sound ontology: load it, look nodes up, walk the hierarchy.

The file is a JSON list of node objects (``id``, ``name``, ``child_ids``, optional
``restrictions`` such as ``["abstract"]``, ``description``). A node may have several parents.
Every method takes an id, a name or an :class:`OntologyNode` and returns :class:`OntologyNode`
objects, in a deterministic order (file order, ``child_ids`` order, breadth first).
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from .errors import HiveError
from .input_files import load_json_file


class OntologyError(HiveError, ValueError):
    """The ontology file or node list is malformed."""


class UnknownNodeError(HiveError, KeyError):
    """No node has the requested id or name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class OntologyNode:
    """One ontology class."""

    id: str
    name: str
    child_ids: tuple[str, ...] = ()
    restrictions: tuple[str, ...] = ()
    description: str = ""

    @classmethod
    def from_dict(cls, record: Any, where: str = "<records>") -> OntologyNode:
        """Build a node from one JSON object, raising :class:`OntologyError` if malformed."""
        if not isinstance(record, dict):
            raise OntologyError(f"{where}: got a {type(record).__name__}, expected a JSON object "
                                f"per node; fix the file so the list holds only node objects.")
        for key in ("id", "name"):
            if not isinstance(record.get(key), str) or not record[key]:
                raise OntologyError(f"{where}: node {record.get('id', record.get('name', '?'))!r} "
                                    f"has {key}={record.get(key)!r}, expected a non-empty string; "
                                    f"add the {key!r} field to every node.")
        fields = {}
        for key in ("child_ids", "restrictions"):
            value = record.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise OntologyError(f"{where}: node {record['id']!r} has {key}={value!r}, "
                                    f"expected a list of strings; fix that field.")
            fields[key] = tuple(value)
        return cls(id=record["id"], name=record["name"], description=str(record.get("description", "")),
                   **fields)


NodeRef = Union[str, OntologyNode]


class Ontology:
    """An immutable, indexed ontology; parent and child maps are built once here."""

    def __init__(self, nodes: Iterable[OntologyNode], source: str = "<nodes>") -> None:
        self._source = source
        self._by_id: dict[str, OntologyNode] = {}
        for node in nodes:
            if node.id in self._by_id:
                raise OntologyError(f"{source}: id {node.id!r} appears more than once (names "
                                    f"{self._by_id[node.id].name!r} and {node.name!r}); expected "
                                    f"unique ids; remove or rename one of them.")
            self._by_id[node.id] = node
        self._by_name: dict[str, OntologyNode] = {}
        lower: dict[str, list[OntologyNode]] = {}
        self._parents: dict[str, list[str]] = {i: [] for i in self._by_id}
        for node in self._by_id.values():
            if node.name in self._by_name:
                raise OntologyError(f"{source}: name {node.name!r} is used by ids "
                                    f"{self._by_name[node.name].id!r} and {node.id!r}; expected "
                                    f"unique names; rename one of them.")
            self._by_name[node.name] = node
            lower.setdefault(node.name.casefold(), []).append(node)
            for child in node.child_ids:
                if child not in self._by_id:
                    raise OntologyError(f"{source}: node {node.id!r} ({node.name!r}) lists child "
                                        f"{child!r}, which is not a node of this ontology; expected "
                                        f"every child id to be defined; add that node or remove "
                                        f"the child id.")
                if child == node.id or node.id in self._parents[child]:
                    raise OntologyError(f"{source}: node {node.id!r} lists child {child!r} twice or "
                                        f"as itself; expected distinct child ids; fix child_ids.")
                self._parents[child].append(node.id)
        # Only unambiguous case-insensitive names are looked up that way.
        self._by_casefold = {k: v[0] for k, v in lower.items() if len(v) == 1}
        self._check_acyclic()

    @classmethod
    def from_records(cls, records: Any, source: str = "<records>") -> Ontology:
        """Build from a decoded JSON list of node objects."""
        if not isinstance(records, list):
            raise OntologyError(f"{source}: got a JSON {type(records).__name__}, expected a JSON "
                                f"list of node objects (AudioSet ontology format); pass the "
                                f"ontology file itself.")
        return cls((OntologyNode.from_dict(r, f"{source}[{i}]") for i, r in enumerate(records)),
                   source=source)

    @classmethod
    def from_json(cls, path: str | Path) -> Ontology:
        """Load an AudioSet-format ontology JSON file."""
        path = Path(path)
        records = load_json_file(path, "ontology file", "an AudioSet-format ontology (a JSON list of node "
                                 "objects)", OntologyError)
        return cls.from_records(records, source=str(path))

    def _check_acyclic(self) -> None:
        indegree = {i: len(p) for i, p in self._parents.items()}
        queue = deque(i for i, d in indegree.items() if d == 0)
        seen = 0
        while queue:
            seen += 1
            for child in self._by_id[queue.popleft()].child_ids:
                indegree[child] -= 1
                if indegree[child] == 0:
                    queue.append(child)
        if seen != len(self._by_id):
            cyclic = sorted(i for i, d in indegree.items() if d > 0)[:5]
            raise OntologyError(f"{self._source}: the child_ids links form a cycle (through e.g. "
                                f"{cyclic}); expected a hierarchy without cycles; fix child_ids.")

    # -- lookup -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def source(self) -> str:
        """Where the nodes came from (the file path, or a description)."""
        return self._source

    def __iter__(self) -> Iterator[OntologyNode]:
        return iter(self._by_id.values())

    def __contains__(self, key: object) -> bool:
        if isinstance(key, OntologyNode):
            return self._by_id.get(key.id) == key
        return isinstance(key, str) and (key in self._by_id or key in self._by_name
                                         or key.casefold() in self._by_casefold)

    def __repr__(self) -> str:
        return f"Ontology({len(self)} nodes from {self._source})"

    def node(self, key: NodeRef) -> OntologyNode:
        """Find a node by id, then exact name, then case-insensitive name."""
        if isinstance(key, OntologyNode):
            key = key.id
        if not isinstance(key, str):
            raise TypeError(f"expected an id or name string, got {type(key).__name__}")
        found = (self._by_id.get(key) or self._by_name.get(key)
                 or self._by_casefold.get(key.casefold()))
        if found is None:
            close = difflib.get_close_matches(key, list(self._by_name), n=5, cutoff=0.6)
            hint = f"did you mean {', '.join(map(repr, close))}?" if close else \
                "check the spelling against the ontology file."
            raise UnknownNodeError(f"{key!r} is neither an id nor a name in {self._source} "
                                   f"({len(self)} nodes); {hint}")
        return found

    def id_of(self, name: NodeRef) -> str:
        return self.node(name).id

    def name_of(self, node_id: NodeRef) -> str:
        return self.node(node_id).name

    # -- structure ----------------------------------------------------------------------------
    def children(self, key: NodeRef) -> list[OntologyNode]:
        return [self._by_id[c] for c in self.node(key).child_ids]

    def parents(self, key: NodeRef) -> list[OntologyNode]:
        """All parents, in file order (AudioSet has nodes with several)."""
        return [self._by_id[p] for p in self._parents[self.node(key).id]]

    def siblings(self, key: NodeRef) -> list[OntologyNode]:
        """Children of every parent, except the node itself; parent order, then child order."""
        own = self.node(key).id
        out: dict[str, OntologyNode] = {}
        for parent in self._parents[own]:
            for child in self._by_id[parent].child_ids:
                if child != own:
                    out.setdefault(child, self._by_id[child])
        return list(out.values())

    def _bfs(self, start: str, step: dict[str, list[str]] | None) -> list[OntologyNode]:
        seen: dict[str, OntologyNode] = {}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            nexts = self._by_id[current].child_ids if step is None else step[current]
            for other in nexts:
                if other not in seen:
                    seen[other] = self._by_id[other]
                    queue.append(other)
        return list(seen.values())

    def ancestors(self, key: NodeRef) -> list[OntologyNode]:
        """All ancestors, nearest first (breadth first), no duplicates."""
        return self._bfs(self.node(key).id, self._parents)

    def descendants(self, key: NodeRef) -> list[OntologyNode]:
        """All descendants, nearest first (breadth first), no duplicates."""
        return self._bfs(self.node(key).id, None)

    def leaf_descendants(self, key: NodeRef) -> list[OntologyNode]:
        return [n for n in self.descendants(key) if not n.child_ids]

    def is_leaf(self, key: NodeRef) -> bool:
        return not self.node(key).child_ids

    def leaves(self) -> list[OntologyNode]:
        return [n for n in self._by_id.values() if not n.child_ids]

    def roots(self) -> list[OntologyNode]:
        return [n for n in self._by_id.values() if not self._parents[n.id]]

    def is_ancestor(self, ancestor: NodeRef, node: NodeRef) -> bool:
        """True if ``ancestor`` is a strict ancestor of ``node``."""
        target = self.node(ancestor).id
        return any(a.id == target for a in self.ancestors(node))
