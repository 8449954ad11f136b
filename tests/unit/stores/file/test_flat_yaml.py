"""The file store's fast path for meta.yaml (:func:`pyspark_experiments.stores.file.meta.flat_yaml`)
against PyYAML's safe loader, which it stands in for: wherever it answers, the same mapping (keys,
order, values and their types); wherever PyYAML refuses a text, no answer (PyYAML then reports it)."""

from __future__ import annotations

import glob
import os
import random

import yaml

from pyspark_experiments.stores.file.meta import _yaml_loader, flat_yaml

# Characters and words where YAML's rules bite: indicators, comments, quotes, line breaks, and
# plain scalars that resolve to booleans, nulls, numbers or dates.
CHARACTERS = list("abcXYZ019 _-:/#'\".,[]{}~=<>!&*?|%@`\\\t") + ["é", "\u2028", "\x85", "\r", "\n"]
WORDS = ["yes", "No", "on", "OFF", "true", "null", "Null", "~", "", "0", "07", "0x1f", "1_000", "1:20", "1.5",
         ".inf", "2024-01-01", "2001-12-14t21:59:43.10-05:00", "-1", "+3", "1e3", "=", "<<", "a: b", "a #b",
         " lead", "trail ", "it's", "'q'", "file:///tmp/x", "s3://b/k", "000897ee9b", "12345678901234567890",
         "-", "- a", "? x", "%x"]
KEYS = ["run_id", "status", "yes", "null", "on", "a_b", "Key1", "_k", "start_time", "tags"]


def loaded(text: str):
    return yaml.load(text, Loader=_yaml_loader())


def same(fast: dict, reference) -> bool:
    return (isinstance(reference, dict) and list(fast) == list(reference) and fast == reference
            and [type(v) for v in fast.values()] == [type(v) for v in reference.values()])


def random_value(rng):
    draw = rng.random()
    if draw < 0.3:
        return rng.choice(WORDS)
    if draw < 0.6:
        return "".join(rng.choice(CHARACTERS) for _ in range(rng.randint(0, 12)))
    if draw < 0.7:
        return rng.randint(-10**15, 10**15)
    if draw < 0.75:
        return None
    if draw < 0.8:
        return rng.choice([[], {}, [1], {"a": 1}, 1.5, True])
    return "x" * rng.randint(60, 200) + " " + "y" * rng.randint(1, 100)  # folded onto two lines


def test_mappings_dumped_as_mlflow_dumps_them_read_as_pyyaml_reads_them():
    rng = random.Random(1)
    answered = 0
    for _ in range(5000):
        data = {key: random_value(rng) for key in rng.sample(KEYS, rng.randint(1, 6))}
        # mlflow.utils.file_utils.write_yaml
        text = yaml.dump(data, Dumper=yaml.CSafeDumper, default_flow_style=False, allow_unicode=True)
        fast = flat_yaml(text)
        if fast is not None:
            answered += 1
            assert same(fast, loaded(text)), text
    assert answered > 300  # the fast path is taken, not only declined


def test_any_text_pyyaml_refuses_is_declined_and_the_rest_reads_alike():
    rng = random.Random(2)
    characters = list("abc019 _-:/#'\".,[]{}~=<>!&*?|%@`\\\t") + ["é", "\r"]
    answered = 0
    for _ in range(30000):
        lines = []
        for _ in range(rng.randint(1, 4)):
            key = rng.choice(["a", "run_id", "yes", "x1", "k k", "-a", "'q'", "null"])
            value = "".join(rng.choice(characters) for _ in range(rng.randint(0, 8)))
            if rng.random() < 0.2:
                value = f"'{value}'"
            lines.append(key + rng.choice([": ", ":", ":  ", ": ", ": "]) + value)
        text = "\n".join(lines) + rng.choice(["\n", "\n", "", "\n\n"])
        fast = flat_yaml(text)
        try:
            reference = loaded(text)
        except yaml.YAMLError:
            assert fast is None, text
            continue
        if fast is not None:
            answered += 1
            assert same(fast, reference), text
    assert answered > 100


def test_edge_texts():
    declined = [
        "a: 1 # a comment\n", "a: yes\n", "yes: 1\n", "a: 1.5\n", "a: 2024-01-01\n", "a: 0x1f\n", "a: ~\n",
        "a:  b\n", "a: b \n", "a: 'b\n", "a: 'b'c'\n", "a: \"b\"\n", "a:\n", "a: b\n  c\n", "a: b\r\n", "a: b",
        "\ufeffa: b\n", "a: é\n", "a: b\na: c\n", "--- \na: b\n", "a: [1]\n", "a: -1\n", "a: b:\n", "",
    ]
    for text in declined:
        assert flat_yaml(text) is None, text
    accepted = {
        "a: 'it''s'\n": {"a": "it's"}, "a: ''\n": {"a": ""}, "a: '1'\n": {"a": "1"}, "a: it's\n": {"a": "it's"},
        "a: file:///x/y\n": {"a": "file:///x/y"}, "a: a#b\n": {"a": "a#b"}, "a: 0\n": {"a": 0}, "a: []\n": {"a": []},
        "a: {}\n": {"a": {}}, "a: null\n": {"a": None}, "a: ' b # c '\n": {"a": " b # c "},
    }
    for text, expected in accepted.items():
        assert flat_yaml(text) == expected and same(flat_yaml(text), loaded(text)), text


def test_meta_yaml_written_by_mlflow_takes_the_fast_path(small_stores):
    paths = glob.glob(os.path.join(small_stores["file"], "*", "meta.yaml"))
    paths += glob.glob(os.path.join(small_stores["file"], "*", "*", "meta.yaml"))
    assert len(paths) >= 8  # the experiments' and the runs'
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        fast = flat_yaml(text)
        assert fast is not None and same(fast, loaded(text)), text
