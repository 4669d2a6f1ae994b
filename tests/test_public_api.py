"""Every public name of `fairdml` (issue 28) documents its arguments and shows a runnable example: `Args:` when it
takes arguments, `Example:` with `>>>` lines (the package's doctests run them, `--doctest-modules`)."""

from __future__ import annotations

import inspect

import pytest

import fairdml

PUBLIC = [name for name in fairdml.__all__ if name != "__version__"]


def takes_arguments(obj: object) -> bool:
    """Whether a function, or a class's constructor, has a named parameter (`*args` / `**kwargs` alone: no)."""
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin, a Protocol without __init__)
        return False
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return any(parameter.kind not in variadic for parameter in parameters)


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_has_args_and_a_runnable_example(name):
    obj = getattr(fairdml, name)
    doc = inspect.getdoc(obj) or ""
    assert doc, f"fairdml.{name} has no docstring"
    if takes_arguments(obj):
        assert "Args:" in doc, f"fairdml.{name} takes arguments but its docstring has no Args: section"
    example = doc.partition("Example:")[2]
    assert example, f"fairdml.{name}'s docstring has no Example: section"
    assert ">>> " in example, f"fairdml.{name}'s Example: section has no >>> line"


def test_every_public_name_is_its_own_documented_object():
    """`inspect.getdoc` falls back to a base class's docstring: each public class has one of its own."""
    for name in PUBLIC:
        obj = getattr(fairdml, name)
        if inspect.isclass(obj):
            assert obj.__dict__.get("__doc__"), f"fairdml.{name} inherits its docstring"
