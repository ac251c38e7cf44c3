"""One table of options: the command line, the stpipe step and Python take the same options,
with the same defaults and the same checks, because all three are made from
:data:`miripersist.options.OPTIONS`."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from stpipe.config_parser import ValidationError

from miripersist import ConfigError, Parameters, engine
from miripersist.cli import build_parser
from miripersist.options import OPTIONS, checked, split
from miripersist.step import PersistenceMaskStep, from_step

#: A value other than the default for every option but the method, as Python gives it (mode
#: and compress together: compressed sidecars).
GIVEN = {
    "method": "notebook",
    "saturation_refs": ["/refs/a.fits", "/refs/b.fits"],
    "n_unsat_threshold": 5,
    "n_pix_grow_sat": 2,
    "user_mask": "/m/mask.csv",
    "mode": "sidecar",
    "compress": True,
    "keep_names": False,
    "store": "/s/p.zarr",
    "flags": "PERSISTENCE",
    "window_days": 2.0,
    "integrations": "all",
    "dilate": 1,
    "history": ["/old/persistence.zarr"],
    "memory": "/m/detector-memory",
    "lookback": 0.5,
    "verify_checksums": True,
    "skip_bad": True,
    "overwrite": True,
    "batch": 3,
}
#: Another rule, the rest at its defaults.
OTHER_RULE = {o.name: o.default for o in OPTIONS} | {
    "method": "snowblind",
    "saturation_refs": [],
    "history": [],
    "window_days": 1.0,
}


def test_every_option_has_a_value_in_these_tests():
    assert set(GIVEN) == {option.name for option in OPTIONS}


def test_parameters_has_a_field_for_each_parameter_option_with_its_default():
    fields = {f.name: f.default for f in dataclasses.fields(Parameters)}
    table = {o.name: o.default for o in OPTIONS if o.parameter}
    assert {k: fields[k] for k in table} == table
    assert set(fields) - set(table) == {"tile"}, "tile is Python's only"


def test_run_and_resolve_take_every_other_option_with_its_default():
    table = {o.name: o.default for o in OPTIONS if not o.parameter}
    for function in (engine.run, engine.resolve):
        keywords = inspect.signature(function).parameters
        taken = {k: p.default for k, p in keywords.items() if k in table}
        assert taken == table, function.__name__
        extra = set(keywords) - set(table)
        assert extra <= {"inputs", "output_dir", "params", "progress"}, function.__name__


def command_line(values: dict) -> list[str]:
    words = []
    for option in OPTIONS:
        value = values[option.name]
        if value is None:
            continue
        if option.kind == "bool":
            words += [option.cli] if value else []
        elif option.kind == "paths":
            for path in value:
                words += [option.cli, path]
        else:
            words += [option.cli, f"{value}d" if option.kind == "duration" else str(value)]
    return words


def from_the_command_line(words: list[str]) -> tuple[Parameters, dict]:
    args = build_parser().parse_args(["run", "in", "--output-dir", "out", *words])
    fields, keywords = split({option.name: getattr(args, option.name) for option in OPTIONS})
    return Parameters(**fields), keywords


def from_the_step(values: dict) -> tuple[Parameters, dict]:
    step = PersistenceMaskStep(**values)
    read = {option.name: from_step(option, getattr(step, option.key)) for option in OPTIONS}
    fields, keywords = split(read)
    return Parameters(**fields), keywords


def step_values(values: dict) -> dict:
    out = {}
    for option in OPTIONS:
        value = values[option.name]
        if option.kind == "paths":
            value = ",".join(value)
        elif option.kind == "duration" and value is not None:
            value = f"{value}d"
        out[option.key] = value
    return out


def test_the_defaults_are_the_same_on_every_front_end():
    python_fields, python_keywords = split({o.name: o.default for o in OPTIONS})
    assert Parameters(**python_fields) == Parameters()
    cli = from_the_command_line([])
    step = from_the_step({})
    assert cli[0] == step[0] == Parameters()
    empty = {"saturation_refs": [], "history": None}
    assert cli[1] == python_keywords | empty
    assert step[1] == python_keywords | empty | {"history": []}


@pytest.mark.parametrize("given", [GIVEN, OTHER_RULE], ids=["every option", "another rule"])
def test_a_value_given_on_any_front_end_reaches_the_run_alike(given):
    fields, keywords = split(given)
    python = Parameters(**fields)
    assert python != Parameters()
    cli = from_the_command_line(command_line(given))
    step = from_the_step(step_values(given))
    assert cli[0] == step[0] == python
    assert cli[1] | {"history": cli[1]["history"] or []} == step[1] == keywords


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.kind == "int"], ids=str)
def test_a_number_below_its_minimum_is_refused_everywhere(option, capsys):
    low = option.minimum - 1
    with pytest.raises(ConfigError, match=f"^{option.cli} must be {option.minimum} or more"):
        checked(option, low)
    if option.parameter:
        with pytest.raises(ConfigError, match=f"^{option.cli} must be"):
            Parameters(**{option.name: low})
    with pytest.raises(ValidationError, match="too small"):
        PersistenceMaskStep(**{option.key: low})


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.kind == "choice"], ids=str)
def test_a_choice_not_in_the_table_is_refused_everywhere(option, capsys):
    with pytest.raises(ConfigError, match=f"^{option.cli} must be one of"):
        Parameters(**{option.name: "neither"})
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "in", "--output-dir", "o", option.cli, "neither"])
    assert "invalid choice: 'neither'" in capsys.readouterr().err
    with pytest.raises(ValidationError):
        PersistenceMaskStep(**{option.key: "neither"})


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.kind == "bool"], ids=str)
def test_a_switch_from_python_takes_true_or_false_only(option):
    with pytest.raises(ConfigError, match=f"^{option.name} must be True or False, not 'yes'"):
        checked(option, "yes")


def test_every_option_is_in_the_help_and_the_step_spec_with_its_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    spec = PersistenceMaskStep.spec
    for option in OPTIONS:
        assert " ".join(option.described().split()) in text, option.name
        line = next(s for s in spec.splitlines() if s.startswith(f"{option.key} = "))
        assert line.endswith(f"# {option.described()}")
        if option.kind in ("int", "bool", "choice"):
            assert f"default={option.default!r}".replace("'", "") in line.replace("'", "")
