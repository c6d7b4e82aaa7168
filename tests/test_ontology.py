import json
from pathlib import Path

import pytest

from mixing import packaged
from mixing.ontology import Ontology, OntologyError, OntologyNode, UnknownNodeError

DATA = packaged.data_path("hive_ontology.json").parent

HIVE_ROOTS = ["Human sounds", "Animal", "Music", "Natural sounds", "Sounds of things",
              "Source-ambiguous sounds"]


def _load(name: str) -> Ontology:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    return Ontology.from_json(path)


@pytest.fixture(scope="module")
def hive() -> Ontology:
    return _load("hive_ontology.json")


@pytest.fixture(scope="module")
def audioset() -> Ontology:
    return _load("audioset_ontology.json")


def _write(tmp_path: Path, payload) -> Path:
    path = tmp_path / "ontology.json"
    path.write_text(json.dumps(payload))
    return path


# -- real files ---------------------------------------------------------------------------------
def test_hive_counts(hive):
    assert len(hive) == 354
    assert len(hive.leaves()) == 295
    assert sum(not hive.is_leaf(n) for n in hive) == 59
    assert [r.name for r in hive.roots()] == HIVE_ROOTS
    assert len(list(hive)) == 354


def test_audioset_counts(audioset):
    assert len(audioset) == 632
    roots = [r.name for r in audioset.roots()]
    assert len(roots) == 7
    assert roots[:6] == HIVE_ROOTS


def test_restrictions_loaded_and_descriptions_not_shipped(hive):
    human = hive.node("Human sounds")
    assert human.restrictions == ("abstract",)
    assert human.description == ""  # the package ships structure only
    assert isinstance(human.child_ids, tuple)


def test_description_loaded_when_present(tmp_path):
    path = tmp_path / "o.json"
    path.write_text('[{"id": "/m/a", "name": "A", "description": "Sounds of A.", "child_ids": []}]')
    assert Ontology.from_json(path).node("A").description == "Sounds of A."


def test_lookup_by_id_and_name(hive):
    node = hive.node("/m/0dgw9r")
    assert isinstance(node, OntologyNode)
    assert node.name == "Human sounds"
    assert hive.node("Human sounds") is node
    assert hive.node("human SOUNDS") is node
    assert hive.node(node) is node
    assert hive.id_of("Human sounds") == "/m/0dgw9r"
    assert hive.name_of("/m/0dgw9r") == "Human sounds"
    assert "/m/0dgw9r" in hive and "Human sounds" in hive and "human sounds" in hive
    assert "No such sound" not in hive and 42 not in hive


def test_children_and_parents_agree(hive):
    for node in hive:
        for child in hive.children(node):
            assert node in hive.parents(child)
        for parent in hive.parents(node):
            assert node.id in parent.child_ids


def test_multi_parent_siblings_are_union(audioset):
    multi = [n for n in audioset if len(audioset.parents(n)) > 1]
    assert multi, "the AudioSet ontology has nodes with several parents"
    node = multi[0]
    expected: list[str] = []
    for parent in audioset.parents(node):
        for child_id in parent.child_ids:
            if child_id != node.id and child_id not in expected:
                expected.append(child_id)
    siblings = [s.id for s in audioset.siblings(node)]
    assert siblings == expected
    # the union really has members from more than one parent
    for parent in audioset.parents(node):
        assert set(parent.child_ids) - {node.id} <= set(siblings)


def test_siblings_exclude_self(hive):
    for node in hive:
        sibs = hive.siblings(node)
        assert node not in sibs
        assert len({s.id for s in sibs}) == len(sibs)
    assert hive.siblings("Music") == []  # roots have no parents, hence no siblings


def test_ancestors_of_leaf_end_at_root(hive):
    roots = {r.id for r in hive.roots()}
    for leaf in hive.leaves():
        ancestors = hive.ancestors(leaf)
        assert ancestors, f"{leaf.name} has no ancestors"
        ids = {a.id for a in ancestors}
        assert ids & roots, f"{leaf.name} reaches no root"
        # closed upwards: every chain of parents ends at a root inside the set
        for ancestor in ancestors:
            assert {p.id for p in hive.parents(ancestor)} <= ids
            assert hive.parents(ancestor) or ancestor.id in roots
        assert len({a.id for a in ancestors}) == len(ancestors)
        assert ancestors[0] in hive.parents(leaf)
        assert leaf not in ancestors


def test_descendants_and_leaf_descendants(hive):
    for node in hive:
        desc = hive.descendants(node)
        desc_ids = {d.id for d in desc}
        assert len(desc_ids) == len(desc)
        assert node.id not in desc_ids
        leaves = hive.leaf_descendants(node)
        for leaf in leaves:
            assert leaf.id in desc_ids and hive.is_leaf(leaf)
        assert {l.id for l in leaves} == {d.id for d in desc if hive.is_leaf(d)}
    all_leaves = set()
    for root in hive.roots():
        all_leaves |= {l.id for l in hive.leaf_descendants(root)}
    assert all_leaves == {l.id for l in hive.leaves()}


def test_is_ancestor(hive):
    leaf = hive.leaves()[0]
    root = next(a for a in hive.ancestors(leaf) if not hive.parents(a))
    assert hive.is_ancestor(root, leaf)
    assert hive.is_ancestor(root.name, leaf.id)
    assert not hive.is_ancestor(leaf, root)
    assert not hive.is_ancestor(leaf, leaf)
    assert not hive.is_ancestor("Music", "Human sounds")


# -- error cases --------------------------------------------------------------------------------
def _node(id_, name, children=()):
    return {"id": id_, "name": name, "child_ids": list(children), "restrictions": []}


def test_tiny_file_multi_parent(tmp_path):
    onto = Ontology.from_json(_write(tmp_path, [
        _node("r1", "Root one", ["a", "x"]), _node("r2", "Root two", ["x", "b"]),
        _node("a", "A"), _node("b", "B"), _node("x", "X")]))
    assert [p.id for p in onto.parents("x")] == ["r1", "r2"]
    assert [s.id for s in onto.siblings("X")] == ["a", "b"]
    assert [a.id for a in onto.ancestors("x")] == ["r1", "r2"]


def test_not_a_list(tmp_path):
    with pytest.raises(OntologyError, match="expected a JSON list"):
        Ontology.from_json(_write(tmp_path, {"id": "a", "name": "A"}))


def test_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("[{")
    with pytest.raises(OntologyError, match="not valid JSON"):
        Ontology.from_json(path)


def test_missing_id(tmp_path):
    with pytest.raises(OntologyError, match="'id'"):
        Ontology.from_json(_write(tmp_path, [{"name": "A", "child_ids": []}]))


def test_missing_name(tmp_path):
    with pytest.raises(OntologyError, match="'name'"):
        Ontology.from_json(_write(tmp_path, [{"id": "a", "child_ids": []}]))


def test_duplicate_id(tmp_path):
    with pytest.raises(OntologyError, match="'a' appears more than once"):
        Ontology.from_json(_write(tmp_path, [_node("a", "A"), _node("a", "B")]))


def test_dangling_child(tmp_path):
    with pytest.raises(OntologyError) as err:
        Ontology.from_json(_write(tmp_path, [_node("a", "A", ["ghost"])]))
    assert "'a'" in str(err.value) and "'ghost'" in str(err.value)


def test_cycle(tmp_path):
    with pytest.raises(OntologyError, match="cycle"):
        Ontology.from_json(_write(tmp_path, [_node("a", "A", ["b"]), _node("b", "B", ["a"])]))


def test_unknown_name_suggests(hive):
    with pytest.raises(UnknownNodeError) as err:
        hive.node("Human sound")
    assert isinstance(err.value, KeyError)
    assert "did you mean" in str(err.value) and "'Human sounds'" in str(err.value)


def test_duplicate_name(tmp_path):
    with pytest.raises(OntologyError, match="name 'A' is used by ids 'a' and 'b'"):
        Ontology.from_json(_write(tmp_path, [_node("a", "A"), _node("b", "A")]))
