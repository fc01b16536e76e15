"""The registry's own hook machinery behaves exactly as pluggy's.

The registry keeps plugins and hook implementations itself and calls plain
implementations without importing pluggy (docs/architecture.md, "Registry and plugins").
These tests hold it to pluggy: the markers set the same attributes, the same attributes
are found as implementations with the same argument names, implementations are kept in
the same order and called with the same arguments and results, the same plugins are
refused with the same messages, and hooks with wrappers are handed to pluggy.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pluggy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pluggy._hooks import varnames

import accel
from accel import Registry, hookspecs
from accel import _plugin_manager as pm_module
from accel import registry as registry_module
from accel.errors import PluginError, PluginValidationError
from accel.hookspecs import HookspecMarker

# The registry mirrors pluggy 1.7's lookup (getattr_static based, properties not evaluated).
_static_hook_attr = getattr(pluggy._manager, "_static_hook_attr", None)
needs_pluggy_1_7 = pytest.mark.skipif(
    _static_hook_attr is None, reason="pluggy before 1.7 looks hooks up with getattr()"
)

# --------------------------------------------------------------------------- markers

SPEC_OPTIONS: list[dict[str, Any]] = [
    {},
    {"firstresult": True},
    {"historic": True},
    {"warn_on_impl": DeprecationWarning("old")},
    {"warn_on_impl_args": {"x": DeprecationWarning("x is old")}},
    {"firstresult": True, "warn_on_impl": UserWarning("w")},
]


@pytest.mark.parametrize("options", SPEC_OPTIONS)
def test_hookspec_marker_sets_what_pluggy_sets(options: dict[str, Any]) -> None:
    def ours(x: int) -> None: ...

    def theirs(x: int) -> None: ...

    assert HookspecMarker("accel")(ours, **options) is ours
    pluggy.HookspecMarker("accel")(theirs, **options)
    assert ours.accel_spec == theirs.accel_spec  # type: ignore[attr-defined]
    assert list(ours.accel_spec) == list(theirs.accel_spec)  # type: ignore[attr-defined]

    def later(x: int) -> None: ...

    assert HookspecMarker("accel")(**options)(later) is later
    assert later.accel_spec == theirs.accel_spec  # type: ignore[attr-defined]


def test_hookspec_marker_refuses_historic_firstresult_as_pluggy_does() -> None:
    def f() -> None: ...

    with pytest.raises(ValueError, match="cannot have a historic firstresult hook") as ours:
        HookspecMarker("accel")(f, firstresult=True, historic=True)
    with pytest.raises(ValueError) as theirs:
        pluggy.HookspecMarker("accel")(f, firstresult=True, historic=True)
    assert str(ours.value) == str(theirs.value)
    assert not hasattr(f, "accel_spec")


def test_accel_hookspecs_is_a_pluggy_spec_module() -> None:
    pm = pluggy.PluginManager("accel")
    pm.add_hookspecs(hookspecs)
    specs = registry_module._hook_specs()
    assert isinstance(hookspecs.hookspec, HookspecMarker)
    assert hookspecs.hookspec.project_name == "accel"

    def plain() -> None: ...

    defaults = pluggy.HookspecMarker("accel")(plain).accel_spec  # type: ignore[attr-defined]
    for name in specs:
        assert getattr(hookspecs, name).accel_spec == defaults  # what @hookspec sets
    assert list(specs) == [
        name for name in dir(hookspecs) if getattr(getattr(pm.hook, name, None), "spec", None)
    ]
    for name, spec in specs.items():
        theirs = getattr(pm.hook, name).spec
        assert (spec.argnames, spec.kwargnames, spec.kwargdefaults, spec.opts) == (
            theirs.argnames,
            theirs.kwargnames,
            theirs.kwargdefaults,
            theirs.opts,
        )


# --------------------------------------------------------------------------- introspection


def _plain(a: int, b: int, c: int = 3, *args: int, d: int = 4, **kw: int) -> None: ...


def _no_args() -> None: ...


class _Methods:
    def method(self, a: int, b: int = 2) -> None: ...

    def noself(a: int) -> None: ...  # type: ignore[misc]

    @staticmethod
    def static(self: int, a: int) -> None: ...

    @classmethod
    def klass(cls, a: int) -> None: ...

    def __call__(self, x: int) -> None: ...


class _WithInit:
    def __init__(self, a: int, b: int = 0) -> None: ...


class _NoInit:
    pass


@functools.wraps(_plain)
def _wrapped(*args: Any, **kwargs: Any) -> None: ...


def _local_class() -> type:
    class Local:
        def method(self, q: int) -> None: ...

        def cls_named(cls, q: int) -> None: ...

    return Local


CALLABLES: list[object] = [
    _plain,
    _no_args,
    _wrapped,
    lambda x, y=1: None,
    _Methods.method,
    _Methods().method,
    _Methods.noself,
    _Methods.static,
    _Methods.klass,
    _Methods(),
    _WithInit,
    _NoInit,
    _local_class().method,
    _local_class()().method,
    _local_class().cls_named,
    functools.partial(_plain, 1),
    len,
    object().__str__,
    str.join,
    registry_module.Registry.register,
]


@needs_pluggy_1_7
@pytest.mark.parametrize("func", CALLABLES, ids=repr)
def test_argument_names_are_pluggys_varnames(func: object) -> None:
    assert registry_module._varnames(func) == varnames(func)
    assert pm_module.varnames(func) == varnames(func)


class _Slotted:
    __slots__ = ("empty_slot", "slot_fn")

    def __init__(self) -> None:
        self.slot_fn = _plain


class _Descriptors:
    shadow = 1

    @property
    def prop(self) -> Callable[..., None]:
        raise AssertionError("properties are not evaluated")

    @functools.cached_property
    def cached(self) -> Callable[..., None]:
        raise AssertionError("cached properties are not evaluated")

    def method(self) -> None: ...

    @staticmethod
    def static() -> None: ...

    @classmethod
    def klass(cls) -> None: ...

    def __getattr__(self, name: str) -> Any:
        raise AssertionError("__getattr__ is not called")


class _Meta(type):
    def from_meta(cls) -> None: ...


class _WithMeta(metaclass=_Meta):
    pass


def _instances() -> list[object]:
    described = _Descriptors()
    described.__dict__["in_dict"] = _plain
    described.__dict__["bound"] = _Methods().method
    described.__dict__["shadow"] = _no_args
    described.__dict__["not_callable"] = 3
    module = types.ModuleType("fake_plugin")
    module.f = _plain  # type: ignore[attr-defined]
    module.s = staticmethod(_plain)  # type: ignore[attr-defined]
    module.m = _Methods().method  # type: ignore[attr-defined]
    return [
        described,
        _Descriptors,
        _Slotted(),
        _WithMeta,
        module,
        SimpleNamespace(a=_plain, b=_Methods().method, c=1),
        registry_module,
        pm_module,
        hookspecs,
    ]


@needs_pluggy_1_7
@pytest.mark.parametrize("obj", _instances(), ids=lambda o: type(o).__name__)
def test_hook_attributes_are_found_as_pluggy_finds_them(obj: object) -> None:
    # (The registry's own "no such attribute" marker is the one value it cannot look up.)
    names = {*dir(obj), "from_meta", "missing", "empty_slot"} - {"_ABSENT"}
    for name in sorted(names):
        assert pm_module.getattr_static(obj, name) == inspect.getattr_static(obj, name, None), name
        assert _static_hook_attr is not None
        assert pm_module.hook_attr(obj, name) == _static_hook_attr(obj, name), name


class _ModuleSubclass(types.ModuleType):
    pass


def _plugin_modules() -> list[types.ModuleType]:
    """Modules as plugins, with every kind of attribute the registry reads directly or not."""

    @accel.hookimpl
    def accel_accelerators() -> None: ...

    @accel.hookimpl(specname="accel_device_types", tryfirst=True)
    def provide() -> None: ...

    @accel.hookimpl
    def dunder() -> None: ...

    def unmarked() -> None: ...

    @accel.hookimpl
    def wrapped_inner(machine: Any) -> None: ...

    @functools.wraps(wrapped_inner)
    def wrapped(*args: Any) -> None: ...

    not_a_dict = lambda: None  # noqa: E731
    not_a_dict.accel_impl = "yes"  # type: ignore[attr-defined]

    class Holder:
        @accel.hookimpl
        def method(self, accelerator: Any) -> None: ...

    plain = types.ModuleType("plain_plugin")
    plain.accel_accelerators = accel_accelerators  # type: ignore[attr-defined]
    plain.provide = provide  # type: ignore[attr-defined]
    plain.unmarked = unmarked  # type: ignore[attr-defined]
    plain.wrapped = wrapped  # type: ignore[attr-defined]
    plain.not_a_dict = not_a_dict  # type: ignore[attr-defined]
    plain.number = 3  # type: ignore[attr-defined]
    kinds = types.ModuleType("kinds_plugin")
    kinds.static = staticmethod(accel.hookimpl(lambda: None))  # type: ignore[attr-defined]
    kinds.klass = classmethod(accel.hookimpl(lambda cls: None))  # type: ignore[attr-defined]
    kinds.bound = Holder().method  # type: ignore[attr-defined]
    kinds.__repr__ = dunder  # type: ignore[method-assign]
    kinds.__init__ = dunder  # type: ignore[misc]
    kinds.__dict__["__class__"] = dunder
    listed = types.ModuleType("listed_plugin")
    listed.accel_accelerators = accel_accelerators  # type: ignore[attr-defined]
    listed.provide = provide  # type: ignore[attr-defined]
    listed.__dir__ = lambda: ["provide"]  # type: ignore[method-assign]
    subclass = _ModuleSubclass("subclass_plugin")
    subclass.provide = provide  # type: ignore[attr-defined]
    return [plain, kinds, listed, subclass, hookspecs, accel, registry_module]


@needs_pluggy_1_7
@pytest.mark.parametrize("module", _plugin_modules(), ids=lambda m: m.__name__)
def test_module_plugins_are_read_as_pluggy_reads_them(module: types.ModuleType) -> None:
    theirs = pluggy.PluginManager("accel")
    expected = [
        (name, opts)
        for name in dir(module)
        if (opts := theirs.parse_hookimpl_opts(module, name)) is not None
    ]
    found = registry_module._marked(module, "accel_impl")
    assert [(name, opts) for name, _f, opts in found] == expected
    assert found == pm_module.marked(module, "accel_impl")


# --------------------------------------------------------------------------- plugins

# Hook specifications for the generated plugins: accel's own plus a firstresult hook and
# one with a default argument, in a module standing in for accel.hookspecs.
_spec = HookspecMarker("accel")


def accel_first(x: int, y: int) -> object:
    """A firstresult hook."""


def accel_all(x: int, y: int, z: int = 7) -> object:
    """A hook whose last argument has a default."""


SPECS = types.ModuleType("generated_specs")
for _name in ("accel_accelerators", "accel_device_types", "accel_clock_devices"):
    setattr(SPECS, _name, getattr(hookspecs, _name))
SPECS.accel_first = _spec(accel_first, firstresult=True)  # type: ignore[attr-defined]
SPECS.accel_all = _spec(accel_all)  # type: ignore[attr-defined]
SPEC_ARGS = {
    "accel_first": ("x", "y"),
    "accel_all": ("x", "y", "z"),
    "accel_clock_devices": ("accelerator", "machine"),
    "accel_device_types": (),
}


@pytest.fixture
def specs(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    monkeypatch.setattr(registry_module, "hookspecs", SPECS)
    monkeypatch.setattr(registry_module, "_specs", None)
    yield SPECS


def reference(plugins: list[tuple[str, object]]) -> pluggy.PluginManager:
    """A pluggy plugin manager with ``plugins`` registered in order."""
    pm = pluggy.PluginManager("accel")
    pm.add_hookspecs(registry_module.hookspecs)
    for name, plugin in plugins:
        pm.register(plugin, name=name)
    return pm


class Boom(Exception):
    """Raised by a generated implementation."""


impl_options = st.fixed_dictionaries(
    {
        "hook": st.sampled_from(sorted(SPEC_ARGS)),
        "tryfirst": st.booleans(),
        "trylast": st.booleans(),
        "specname": st.booleans(),
        "returns": st.sampled_from(["value", "none", "raise"]),
        "defaults": st.booleans(),
    },
).flatmap(
    lambda o: st.permutations(SPEC_ARGS[o["hook"]]).flatmap(
        lambda perm: st.integers(0, len(perm)).map(lambda n: {**o, "args": perm[:n]})
    )
)


def make_plugin(index: int, impls: list[dict[str, Any]], log: list[Any]) -> object:
    """A plugin whose implementations log their calls and return ``(plugin, impl)``."""
    plugin = SimpleNamespace(index=index)  # equal plugins cannot both be registered
    for number, opts in enumerate(impls):
        args = list(opts["args"])
        params = list(args)
        if opts["defaults"] and params:
            params[-1] += "=None"  # pluggy passes it by keyword when the call has it
        tag = (index, number)
        source = (
            f"def impl({', '.join(params)}):\n"
            f"    log.append((tag, {', '.join(args)}{',' if len(args) == 1 else ''}))\n"
            f"    if returns == 'raise':\n"
            f"        raise Boom(tag)\n"
            f"    return None if returns == 'none' else tag\n"
        )
        scope: dict[str, Any] = {"log": log, "tag": tag, "returns": opts["returns"], "Boom": Boom}
        exec(source, scope)
        function = scope["impl"]
        function.__name__ = function.__qualname__ = opts["hook"]
        marker: dict[str, Any] = {"tryfirst": opts["tryfirst"], "trylast": opts["trylast"]}
        if opts["specname"]:
            marker["specname"] = opts["hook"]
            attr = f"impl_{number}"
        else:
            attr = opts["hook"]
        if hasattr(plugin, attr):
            continue  # one implementation per attribute
        setattr(plugin, attr, accel.hookimpl(**marker)(function))
    return plugin


def outcome(log: list[Any], call: Callable[..., object], *args: Any, **kwargs: Any) -> Any:
    """What ``call`` returns or raises, and the implementation calls it made."""
    del log[:]
    try:
        result = call(*args, **kwargs)
    except Boom as exc:
        result = ("raised", exc.args)
    return result, list(log)


CALLS = {
    "accel_first": {"x": 1, "y": 2},
    "accel_all": {"x": 1, "y": 2},
    "accel_clock_devices": {"accelerator": "acc", "machine": "m"},
    "accel_device_types": {},
}


def order(impls: list[Any]) -> list[tuple[str, object]]:
    return [(impl.plugin_name, impl.function) for impl in impls]


# The specs fixture only swaps module attributes, the same for every example.
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plugins=st.lists(st.lists(impl_options, max_size=4), min_size=1, max_size=6),
    removed=st.sets(st.integers(0, 5), max_size=3),
    sync_after=st.integers(0, 6),
    data=st.data(),
)
def test_light_dispatch_returns_what_pluggy_returns(
    specs: types.ModuleType,
    plugins: list[list[dict[str, Any]]],
    removed: set[int],
    sync_after: int,
    data: st.DataObject,
) -> None:
    log: list[Any] = []
    reg = Registry(entry_points=False)
    kept: list[tuple[str, object]] = []
    for index, impls in enumerate(plugins):
        if index == sync_after:
            reg.plugin_manager  # noqa: B018 - from here on registration keeps it in step
        plugin = make_plugin(index, impls, log)
        reg.register(plugin, name=f"p{index}")
        kept.append((f"p{index}", plugin))
    for index in sorted(removed):
        if index < len(plugins):
            reg.unregister(f"p{index}")
    # pluggy with the same registrations and removals (its order can depend on plugins
    # since removed, when an implementation is both tryfirst and trylast).
    pm = reference(kept)
    for index in sorted(removed):
        pm.unregister(name=f"p{index}")

    for hook, kwargs in CALLS.items():
        theirs = getattr(pm.hook, hook)
        assert order(reg._impls[hook]) == order(theirs.get_hookimpls()), hook
        assert outcome(log, reg._call_hook, hook, kwargs) == outcome(log, theirs, **kwargs), hook
        mine = getattr(reg.plugin_manager.hook, hook)  # made now, or kept in step
        assert order(mine.get_hookimpls()) == order(theirs.get_hookimpls()), hook
    assert reg.plugin_manager.list_name_plugin() == pm.list_name_plugin()

    # A call missing an argument is pluggy's (a warning, or HookCallError): the same.
    hook = data.draw(st.sampled_from(["accel_first", "accel_all"]))
    partial = {"x": 1}
    with pytest.warns(UserWarning) as ours:
        mine_outcome = outcome(log, _or_error, reg._call_hook, hook, partial)
    with pytest.warns(UserWarning) as theirs_warned:
        their_outcome = outcome(log, _or_error, getattr(pm.hook, hook), None, partial)
    assert mine_outcome == their_outcome
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs_warned]


def _or_error(call: Callable[..., object], hook: str | None, kwargs: dict[str, Any]) -> object:
    try:
        return call(hook, kwargs) if hook is not None else call(**kwargs)
    except pluggy.HookCallError as exc:
        return ("HookCallError", str(exc))


def test_clock_devices_go_through_the_light_dispatch_in_pluggys_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    choices = {n: accel.ClockDeviceChoice(n, True, "why") for n in ("a", "b", "c", "d")}

    def plugin(name: str, **marker: bool) -> object:
        @accel.hookimpl(**marker)
        def accel_clock_devices(machine: Any) -> Any:
            return [choices[name]]

        return SimpleNamespace(accel_clock_devices=accel_clock_devices)

    reg = Registry(entry_points=False)
    reg.register(plugin("a", tryfirst=True), name="a")
    reg.register(plugin("b", trylast=True), name="b")
    reg.register(plugin("c"), name="c")
    reg.register(plugin("d"), name="d")
    monkeypatch.setitem(sys.modules, "pluggy", None)  # the light path must not need it
    got = reg.clock_devices(accelerator=None, machine=None)  # type: ignore[arg-type]
    monkeypatch.undo()
    pm = reg.plugin_manager
    expected = [c for r in pm.hook.accel_clock_devices(accelerator=None, machine=None) for c in r]
    assert [c.device for c in got] == [c.device for c in expected] == ["a", "d", "c", "b"]


# --------------------------------------------------------------------------- wrappers


def test_a_wrapper_is_dispatched_through_pluggy() -> None:
    seen: list[str] = []

    @accel.hookimpl
    def accel_clock_devices(accelerator: Any, machine: Any) -> Any:
        seen.append("plain")
        return [accel.ClockDeviceChoice("kept", True, "plain")]

    @accel.hookimpl(wrapper=True)
    def wrapping(accelerator: Any) -> Any:
        seen.append("before")
        result = yield
        seen.append("after")
        return [*result, [accel.ClockDeviceChoice("added", False, "wrapper")]]

    @accel.hookimpl(hookwrapper=True)
    def old_style(machine: Any) -> Any:
        outcome = yield
        seen.append("old-style")
        outcome.force_result([*outcome.get_result(), []])

    reg = Registry(entry_points=False)
    reg.register(SimpleNamespace(accel_clock_devices=accel_clock_devices), name="plain")
    wrapper = SimpleNamespace(accel_clock_devices=wrapping)
    wrapping.__name__ = "accel_clock_devices"
    reg.register(wrapper, name="wrapper")
    old = SimpleNamespace(accel_clock_devices=old_style)
    reg.register(old, name="old")
    kwargs = {"accelerator": "acc", "machine": "m"}

    pm = reference([("plain", reg._plugins["plain"]), ("wrapper", wrapper), ("old", old)])
    expected = pm.hook.accel_clock_devices(**kwargs)
    expected_seen = list(seen)
    seen.clear()
    assert reg._call_hook("accel_clock_devices", kwargs) == expected
    assert seen == expected_seen == ["before", "plain", "after", "old-style"]
    assert order(reg._impls["accel_clock_devices"]) == order(
        pm.hook.accel_clock_devices.get_hookimpls()
    )
    devices = reg.clock_devices(accelerator="acc", machine="m")  # type: ignore[arg-type]
    assert [c.device for c in devices] == ["kept", "added"]


def test_a_wrapped_hook_still_names_the_plugin_that_raised() -> None:
    @accel.hookimpl
    def accel_clock_devices() -> Any:
        raise KeyError("oops")

    @accel.hookimpl(wrapper=True)
    def wrapping() -> Any:
        return (yield)

    wrapping.__name__ = "accel_clock_devices"
    reg = Registry(entry_points=False)
    reg.register(SimpleNamespace(accel_clock_devices=accel_clock_devices), name="buggy")
    reg.register(SimpleNamespace(accel_clock_devices=wrapping), name="wrapper")
    with pytest.raises(PluginError, match=r"'buggy'.*KeyError") as info:
        reg.clock_devices(accelerator="acc", machine="m")  # type: ignore[arg-type]
    assert info.value.plugin == "buggy"


def test_plugin_manager_is_made_on_first_use_and_kept_in_step() -> None:
    reg = Registry(entry_points=False)
    first = SimpleNamespace(n=1)
    reg.register(first, name="first")
    assert reg._pm is None
    pm = reg.plugin_manager
    assert isinstance(pm, pluggy.PluginManager)
    assert reg.plugin_manager is pm
    second = SimpleNamespace(n=2)
    reg.register(second, name="second")
    assert pm.list_name_plugin() == [("first", first), ("second", second)]
    reg.unregister("first")
    assert pm.list_name_plugin() == [("second", second)]


# --------------------------------------------------------------------------- validation


def _broken_plugins() -> list[tuple[str, object]]:
    @accel.hookimpl
    def accel_clock_devices(accelerator: Any, machin: Any) -> None: ...

    @accel.hookimpl
    def accel_accelerator() -> None: ...

    def accel_accelerators() -> None: ...

    def accel_acelerators() -> None: ...

    @accel.hookimpl(specname="accel_device_types")
    def provide(extra: Any) -> None: ...

    @accel.hookimpl
    def not_a_hook() -> None: ...

    @accel.hookimpl(wrapper=True)
    def not_a_generator() -> None: ...

    @accel.hookimpl(wrapper=True, hookwrapper=True)
    def both(accelerator: Any) -> Any:
        yield

    class Methods:
        @accel.hookimpl
        def accel_clock_devices(self, accelerator: Any, vm: Any) -> None: ...

    not_a_generator.__name__ = "accel_clock_devices"
    return [
        ("wrong-arg", SimpleNamespace(accel_clock_devices=accel_clock_devices)),
        ("unknown-hook", SimpleNamespace(accel_accelerator=accel_accelerator)),
        ("unmarked", SimpleNamespace(accel_accelerators=accel_accelerators)),
        ("lookalike", SimpleNamespace(accel_acelerators=accel_acelerators)),
        ("specname-arg", SimpleNamespace(provide=provide)),
        ("other-name", SimpleNamespace(not_a_hook=not_a_hook)),
        ("not-generator", SimpleNamespace(accel_clock_devices=not_a_generator)),
        ("both-wrappers", SimpleNamespace(accel_clock_devices=both)),
        ("method", Methods()),
        (
            "two-errors",
            SimpleNamespace(accel_clock_devices=accel_clock_devices, accel_x=accel_accelerator),
        ),
    ]


@pytest.mark.parametrize(("name", "plugin"), _broken_plugins(), ids=lambda v: str(v)[:20])
def test_broken_plugins_are_refused_with_pluggys_messages(name: str, plugin: object) -> None:
    light = Registry(entry_points=False)
    with pytest.raises(PluginValidationError) as ours:
        light.register(plugin, name=name)
    through_pluggy = Registry(entry_points=False)
    through_pluggy.plugin_manager  # noqa: B018 - registration now goes through pluggy
    with pytest.raises(PluginValidationError) as theirs:
        through_pluggy.register(plugin, name=name)
    assert (ours.value.message, ours.value.plugin, ours.value.hint) == (
        theirs.value.message,
        theirs.value.plugin,
        theirs.value.hint,
    )
    for reg in (light, through_pluggy):
        assert reg.plugins() == []
        assert reg.plugin_manager.list_name_plugin() == []
        assert all(not impls for impls in reg._impls.values())


def test_argument_error_message_is_pluggys() -> None:
    (name, plugin), *_ = _broken_plugins()
    with pytest.raises(pluggy.PluginValidationError) as theirs:
        reference([(name, plugin)])
    with pytest.raises(PluginValidationError) as ours:
        Registry(entry_points=False).register(plugin, name=name)
    assert ours.value.message == f"plugin {name!r}: {theirs.value}"


# --------------------------------------------------------------------------- entry points


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab._:[] \n\t\x0bé٣\u2003x]")), max_size=14))
def test_entry_point_values_parse_as_importlib_metadata_parses_them(value: str) -> None:
    from importlib.metadata import EntryPoint

    match = EntryPoint.pattern.match(value)
    try:
        parsed = registry_module._parse_entry_point_value(value)
    except ValueError:
        assert match is None
    else:
        assert match is not None
        assert parsed == (match.group("module"), match.group("attr") or "")
