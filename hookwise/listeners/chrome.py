"""``--listener chrome=PATH``: the calls as a Trace Event Format file for ui.perfetto.dev and chrome://tracing.

Every event is recorded (the ``record`` listener's writer, into a private
recording beside PATH: ``PATH.rec``, or a temporary file when PATH is a device
such as /dev/null), and the trace is made from the recording by the streaming
converter of ``hookwise.recording.chrome``, which says what the file holds:

- as the run goes: each time a thread's chunk of the recording is full (every
  few thousand calls), the thread that filled it converts its events and
  appends them to PATH. Memory stays bounded by the calls still open, and the
  recording's cost per call is all the program pays in between;
- at exit (also after an uncaught exception, ``sys.exit`` or SIGTERM): the rest,
  then the calls still running, marked unfinished, then ``]``; the recording
  is removed.

PATH is the JSON array form, which may be left unclosed: a process killed by
SIGKILL or the OOM killer leaves a trace that loads, with every call that
ended in the chunks converted so far (each event whole, even when the kill
comes in the middle of a write: ``_output.append_records``), and the recording
beside it, with every event it finished: ``python -m hookwise.convert PATH.rec --to chrome=PATH``
makes the whole trace from it.

PATH is created when the listener is, before the program starts; a child
process of the run writes its own trace beside it, ``PATH`` with its pid before
the extension (see ``_output``), from its own recording.

Must never: keep the program's objects (the recording holds values or their
rendered text), use the ``json`` module (see ``_jsontext``), or convert a
chunk its thread is still writing before exit.
"""

import os
import sys
from _thread import allocate_lock

from .. import _originals, report
from ..call import clock_ns
from ..recording import format as fmt
from ..recording.chrome import ProcessTrace
from ..recording.reader import Recording
from ..render import Render
from . import _output, require_arg
from .record import open_writer, private_path


def from_spec(arg, settings):
    output = _output.create(require_arg("chrome", arg, "a path"), in_child=settings.in_child)
    return ChromeTraceListener(output, render=settings.render, in_child=settings.in_child)


class ChromeTraceListener:
    """Records every call; writes the trace from the recording as chunks fill, and the rest in ``close()``."""

    def __init__(self, output, render=None, in_child=False):
        self._output = output
        self.render = render if render is not None else Render()
        self._origin_ns = clock_ns()
        self._pid = _originals.os_getpid()
        self._writer = open_writer(private_path(output, "chrome"), render=self.render, in_child=in_child)
        self._writer.on_retire = self._retired
        # opened now, before the program runs: opening a file inside one of its calls would let its other
        # threads run there (the reads that follow keep the GIL, with the accelerator: hookwise.writes)
        self._recording = Recording(self._writer.path, live=True)
        # the runtime calls the writer's own methods: no frame of ours in between
        self.start, self.end, self.error = self._writer.start, self._writer.end, self._writer.error
        self._lock = allocate_lock()
        self._converting = None  # the thread converting now
        self._trace = None  # the converter, made at the first conversion (the program's name is known then)
        self._done = set()  # the seq of every chunk converted
        self._failed = False
        self._closed = False
        output.append("[\n")

    @property
    def recording_path(self):
        return self._writer.path

    def _converter(self):
        if self._trace is None:
            self._trace = ProcessTrace(self._recording, self.render, self._origin_ns, self._pid, _program_name())
        return self._trace

    def _flush(self):
        out = self._trace.out
        if out:
            # every event is followed by a comma: the array may stay unclosed; and none is cut by a kill
            self._output.append_records(out, ",\n")
            out.clear()

    def _convert(self, offset, data=None):
        if data is None:
            data = self._trace.recording.chunk(offset)
        # the strings, sites and thread names its events name were written before them: read what is new
        self._trace.recording.refresh()
        seq = fmt.CHUNK_HEADER.unpack_from(data, 0)[2] if len(data) >= fmt.CHUNK_HEADER.size else 0
        if seq and seq not in self._done:
            self._done.add(seq)
            self._trace.events(data)

    # -- as the run goes ------------------------------------------------------
    def _retired(self, offset, data):
        """The writer's ``on_retire``: a thread's chunk is complete (``data``: its bytes); its events go to
        the trace now."""
        if self._closed or self._failed or self._output is None or _originals.os_getpid() != self._pid:
            return
        with self._lock:
            self._converting = _originals.get_ident()
            try:
                self._converter()
                self._convert(offset, data)
                self._flush()
            except Exception as exc:  # a bug of ours: the recording still has everything
                self._failed = True
                report.warn(f"the chrome trace {self._output.path} stopped being written as the run goes "
                            f"({type(exc).__name__}: {exc}); it is made at exit")
            finally:
                self._converting = None

    def finding(self, finding):
        """A guard finding (hookwise.guard): an instant on its thread's track, written at once."""
        if self._closed or self._output is None or self._converting == _originals.get_ident():
            return
        from ._timeline import _where

        fields = finding.as_dict()
        fields["app_caller"] = _where(finding.app_caller)
        at_ns = clock_ns()
        with self._lock:
            trace = self._converter()
            trace.finding(at_ns, finding.thread_id, finding.thread_name, fields)
            self._flush()

    # -- processes and exit -------------------------------------------------------
    def after_fork_in_child(self):
        """This process writes its own recording and trace; the calls open on the forking thread go on here."""
        here = _originals.get_ident()
        self._lock = allocate_lock()  # another thread may have held the parent's at the fork
        self._converting = None
        try:
            trace = self._converter()
            trace.recording.refresh()
            for seq, thread, offset in trace.recording.event_chunks():  # its calls not converted yet
                if thread == here and seq not in self._done:
                    self._convert(offset)
            trace.out.clear()  # the parent's: in the parent's trace
        except Exception:
            trace = None
        self._writer.after_fork_in_child()
        self._pid = _originals.os_getpid()
        self._done = set()
        self._output = self._output.for_forked_child() if self._output is not None else None
        if self._output is None:
            self._trace = None
            return
        self._output.append("[\n")
        try:
            self._recording = Recording(self._writer.path, live=True)
        except fmt.RecordingError:  # the writer could not open this process's file (it said so)
            trace = None
        if trace is not None:
            trace.for_forked_child(self._recording, self._pid, here)
        self._trace = trace

    def close(self):
        if self._closed or _originals.os_getpid() != self._pid or self._output is None:
            return
        self._closed = True
        if self._converting == _originals.get_ident():  # a signal handler, in the middle of a conversion
            report.warn(f"the chrome trace {self._output.path} lacks the end of the run: "
                        f"python -m hookwise.convert {self._writer.path} --to chrome=... makes all of it")
            return
        if not self._lock.acquire(timeout=3):
            report.warn(f"the chrome trace {self._output.path} lacks the end of the run (busy): "
                        f"python -m hookwise.convert {self._writer.path} --to chrome=... makes all of it")
            return
        try:
            dropped = self._writer.dropped
            self._writer.full = True  # what other threads do from now on is not in the trace
            trace = self._converter()
            trace.recording.refresh()
            for seq, thread, offset in trace.recording.event_chunks():
                self._convert(offset)
                self._flush()
            trace.finish(clock_ns())
            self._flush()
            self._output.finish(trace.closing(dropped) + "\n]\n")  # the last event: no comma after it
            trace.recording.close()
        except Exception as exc:
            report.warn(f"the chrome trace {self._output.path} is incomplete ({type(exc).__name__}: {exc}): "
                        f"python -m hookwise.convert {self._writer.path} --to chrome=... makes all of it")
            return
        finally:
            self._lock.release()
        try:
            _originals.os_unlink(self._writer.path)
        except OSError:
            pass


def _program_name():
    argv0 = sys.argv[0] if sys.argv and isinstance(sys.argv[0], str) and sys.argv[0] else "python"
    return os.path.basename(argv0)
