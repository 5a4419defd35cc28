"""The import hook: a finder at ``sys.meta_path[0]`` and the loader it hands out.

The finder claims a module only when a target can name it (a cheap name check
first), only when the module is a real ``.py`` file that the standard
``SourceFileLoader`` would load, and never one of hookwise's own packages.
Everything else is left to the rest of ``sys.meta_path`` untouched.

The loader is a ``SourceFileLoader`` subclass, so ``get_source``, ``get_data``,
``is_package``, ``importlib.resources`` and ``linecache`` behave as usual. It
overrides ``source_to_code`` (rewrite, compile the tree, bind the sites) and
``get_code`` (the same, through hookwise's own bytecode cache, because the
inherited ``get_code`` would happily return the normal, unhooked ``.pyc``).
"""

import gc
import os
import sys
from importlib import _bootstrap
from importlib.machinery import SourceFileLoader

import hookwise
import rewriter
from hookwise import _originals, own, report
from hookwise.own import is_own_file, is_own_name

from . import binding, cache


def build_code(source, path, module_names, targets, optimize=-1):
    """(site table, unbound code) for one module's source: the rewrite, in one place."""
    # A syntax tree is tens of thousands of objects made at once, none of them
    # in a cycle: collections triggered meanwhile only walk the program's heap
    # in vain (rewriting was up to three times slower with a large heap).
    collecting = gc.isenabled()
    if collecting:
        gc.disable()
    try:
        tree = rewriter.parse(source, path, optimize)  # a SyntaxError here is the program's own
        select = targets.selector(module_names)
        site_table = rewriter.instrument(tree, select, kinds=False) if select is not None else []
        try:
            code = _originals.compile(tree, path, "exec", dont_inherit=True, optimize=optimize)
        except SyntaxError as exc:  # the source parsed: the rewrite is at fault
            raise RewriteError(f"the rewritten code does not compile: {exc}") from None
    finally:
        if collecting:
            gc.enable()
    return binding.fill_kinds(site_table, code), code


class RewriteError(Exception):
    """The rewrite of a module that compiles as it is produced code that does not."""


def compile_natively(source, path, optimize=-1):
    """Compile exactly as importlib does (used when the source cannot be rewritten)."""
    return _bootstrap._call_with_frames_removed(
        _originals.compile, source, path, "exec", dont_inherit=True, optimize=optimize
    )


# warnings.warn(stacklevel=N) looks past the import system's frames, which it
# knows by a file name holding both "importlib" and "_bootstrap" (the same test
# in warnings.py and _warnings.c on 3.10 to 3.13). The loaders' exec_module
# frames stand between importlib and the module's code, so they carry such a
# name: a warning a module raises at import then names the importer's line, as
# without hookwise. The name lies in hookwise's loader directory, so that
# tracebacks leave those frames out as they do every hookwise frame.
_AS_IMPORT_MACHINERY = os.path.join(own.ROOT, "loader", "<exec_module, part of importlib._bootstrap>")


def _seen_as_import_machinery(function):
    function.__code__ = function.__code__.replace(co_filename=_AS_IMPORT_MACHINERY)
    return function


class HookwiseFinder:
    """Claims the modules that can hold targets; see the module docstring."""

    def __init__(self, installation):
        self.installation = installation

    def find_spec(self, fullname, path=None, target=None):
        installation = self.installation
        is_main = installation.is_main_candidate(fullname)
        if not is_main and not installation.targets.may_hold_targets(fullname):
            if fullname in installation.integrations:  # hookwise.web's points: put in place once it has run
                return self._served_as_it_is(fullname, path, target)
            return None
        if is_own_name(fullname):
            return None
        spec = self._spec_from_other_finders(fullname, path, target)
        if spec is None or (type(spec.origin) is str and is_own_file(spec.origin)):  # no os.path: it may be hooked
            return None  # hookwise's own loader or rewriter: a program's module of that name is hooked
        if type(spec.loader) is not SourceFileLoader or not str(spec.origin).endswith(".py"):
            # not ours to rewrite (a C extension, a builtin, a frozen or
            # sourceless module, another project's loader): its targets are
            # served by attribute replacement once its code has run
            if not is_main and hasattr(spec.loader, "exec_module"):
                spec.loader = ServingLoader(spec.loader, installation)
            return spec
        module_names = (fullname,)
        if is_main and spec.submodule_search_locations is None and installation.take_main(fullname):
            module_names = ("__main__", fullname)
        spec.loader = HookwiseLoader(fullname, spec.origin, installation, module_names)
        return spec

    def _served_as_it_is(self, fullname, path, target):
        spec = self._spec_from_other_finders(fullname, path, target)
        if spec is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = ServingLoader(spec.loader, self.installation)
        return spec

    def _spec_from_other_finders(self, fullname, path, target):
        """The spec the import system would have found without us.

        Only the finders after this one are asked: those before it have
        already declined, and one of them may be an import hook that asks the
        others in turn, which would then ask it again, without end.
        """
        finders = sys.meta_path
        try:
            finders = finders[finders.index(self) + 1 :]
        except ValueError:  # taken out of sys.meta_path, yet still called by someone
            finders = [finder for finder in finders if finder is not self]
        for finder in finders:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def invalidate_caches(self):
        pass

    def __repr__(self):
        return "<hookwise finder>"


class ServingLoader:
    """Stands for another finder's loader: runs the module's code with it, then serves its targets.

    What the rewrite cannot serve (functions of extension modules, builtins,
    what a module re-exports from elsewhere) is served right after the
    module's code has run and before the importer sees the module, by the
    same attribute replacement as for a module loaded before hookwise. The
    module gets its own loader back before its code runs, so ``__loader__``
    and ``__spec__.loader`` are what they are without hookwise.
    """

    def __init__(self, loader, installation):
        self._loader = loader
        self._installation = installation

    def create_module(self, spec):
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    @_seen_as_import_machinery
    def exec_module(self, module):
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self._loader
        if module.__dict__.get("__loader__") is self:
            module.__loader__ = self._loader
        try:
            self._loader.exec_module(module)
        except BaseException as exc:
            _drop_own_frames(exc)  # the traceback the program would see without hookwise (3.11+)
            raise
        self._installation.serve_imported(module, (module.__name__,))

    def __getattr__(self, name):  # everything else is the real loader's (get_source, resources, ...)
        return getattr(self._loader, name)

    def __repr__(self):
        return repr(self._loader)


class HookwiseLoader(SourceFileLoader):
    """Loads a module with its targets rewritten; see the module docstring."""

    def __init__(self, fullname, path, installation, module_names=None):
        super().__init__(fullname, path)
        self.installation = installation
        # The first name is the one sites report; the others are aliases targets
        # may use (a module run with -m is also ``__main__``).
        self.module_names = tuple(module_names or (fullname,))
        self.rewrite_failed = False  # then its targets are left to attribute replacement

    @_seen_as_import_machinery
    def exec_module(self, module):
        try:
            super().exec_module(module)
        except BaseException as exc:
            _drop_own_frames(exc)  # the traceback the program would see without hookwise (3.11+)
            raise
        if "__main__" not in self.module_names:  # the runner serves the program's own module
            self.installation.serve_imported(module, self.module_names, rewritten=not self.rewrite_failed)

    def source_to_code(self, data, path, *, _optimize=-1):
        code = self.instrumented_code(data, path, _optimize)
        if code is None:
            return compile_natively(data, path, _optimize)
        return code

    def instrumented_code(self, data, path, optimize=-1):
        """The rewritten, bound code; None when the source cannot be rewritten.

        The caller then compiles the source the usual way, outside any
        ``except`` block, so that a SyntaxError is raised and reported exactly
        as without hookwise (no "during handling of the above exception").
        """
        built = self._build(data, path, optimize)
        return self._bind(*built) if built is not None else None

    def _build(self, source, path, optimize=-1):
        """(site table, unbound code), or None: the program's own SyntaxError, or a rewrite that failed (said once)."""
        try:
            return build_code(source, path, self.module_names, self.installation.targets, optimize)
        except SyntaxError:
            return None
        except Exception as exc:
            self._rewrite_failed(exc)
            return None

    def get_code(self, fullname):
        source_path = self.get_filename(fullname)
        try:
            stats = self.path_stats(source_path)
        except OSError:
            return super().get_code(fullname)
        mtime_ns = int(stats["mtime"] * 1e9)
        size = stats.get("size", 0)
        cache_path = cache.location(source_path) if self.installation.use_cache else None
        key = self.installation.cache_key(self.module_names)
        if cache_path is not None:
            entry = cache.read(cache_path, key, mtime_ns, size)
            if entry is not None:
                site_table, code = entry
                return self._bind(site_table, code)
        source = self.get_data(source_path)
        built = self._build(source, source_path)
        if built is None:
            # Let the compiler raise it again the way importlib does, and drop
            # this frame so that the report looks exactly as without hookwise
            # (on 3.11+, where a bare raise keeps the edited traceback).
            try:
                return compile_natively(source, source_path)
            except BaseException as exc:
                _drop_own_frames(exc)
                raise
        site_table, code = built
        if cache_path is not None:
            cache.write(cache_path, key, mtime_ns, size, site_table, code, _source_mode(source_path))
        return self._bind(site_table, code)

    def _bind(self, site_table, code):
        if not site_table:
            return code
        sites = binding.create_sites(site_table, self.module_names)
        return binding.bind(code, sites)

    def _rewrite_failed(self, exc):
        self.rewrite_failed = True
        report.warn_once(
            ("rewrite", self.name),
            f"could not rewrite module {self.name!r} ({type(exc).__name__}: {exc}); its targets are served by attribute replacement",
        )


try:  # the C hash, without importing hashlib (and OpenSSL) before the program runs
    from _sha2 import sha256
except ImportError:  # before 3.12
    from _sha256 import sha256


def _rewrite_fingerprint():
    """A digest of the code that shapes rewritten bytecode: any change to it is a cache miss."""
    digest = sha256()
    for module in (rewriter.transform, rewriter.names, binding):
        with _originals.open(module.__file__, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


_REWRITE_FINGERPRINT = _rewrite_fingerprint()


def cache_key(code_settings, module_names):
    """The digest that decides whether a cached rewrite may be reused."""
    text = "\n".join(
        (
            sys.implementation.cache_tag or "",
            hookwise.__version__,
            _REWRITE_FINGERPRINT,
            str(sys.flags.optimize),
            ",".join(module_names),
            code_settings,
        )
    )
    return sha256(text.encode("utf-8", "surrogatepass")).digest()


def _source_mode(path):
    try:
        return os.stat(path).st_mode | 0o200
    except OSError:
        return 0o666


def _drop_own_frames(exc):
    """Remove this module's frames from the start of ``exc``'s traceback."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals is globals():
        tb = tb.tb_next
    exc.__traceback__ = tb
