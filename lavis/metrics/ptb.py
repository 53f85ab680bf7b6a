"""PTB tokenization of captions exactly as pycocoevalcap does it, once per call or kept running.

``JavaPTBTokenizer`` runs the same Stanford CoreNLP 3.4.1 jar with the same options and the same
punctuation removal as ``pycocoevalcap.tokenizer.ptbtokenizer.PTBTokenizer`` (so metrics match
it exactly), but writes its temporary file outside site-packages and gives up after a timeout.
``PTBTokenizerProcess`` keeps one JVM running the jar's own tokenizing code on batches of lines
read from a pipe, so SCST can tokenize every step's candidates with the same tokens for about
2 ms instead of a JVM start. A pure-Python imitation of the jar was tried before and differed on
a third of real English sentences (numbers, clitics, "c++", "@user", ...): the jar is the only
definition of these tokens.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from lavis.common.config import cache_root

# pycocoevalcap removes these tokens after tokenizing. With -lowerCase the jar writes brackets
# as "-lrb-" etc., which this (upper-case) list does not catch: they stay, as in pycocoevalcap.
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                          ".", "?", "!", ",", ":", "-", "--", "...", ";"])
Captions = dict[object, list[str]]
# Every line boundary of ``str.splitlines``. The jar starts a new output line at \r, \x0b, \x0c,
# U+2028 and U+2029 as well as \n, so a caption holding one would shift every later caption onto
# the wrong video; it writes U+0085 as "..." and drops \x1c-\x1e. All become spaces, which makes a
# caption tokenize exactly as pycocoevalcap tokenizes it once it is written on one line.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def one_line(caption: str) -> str:
    """``caption`` with each line break replaced by a space: what the tokenizer must receive."""
    return _LINE_BREAKS.sub(" ", caption)


def output_lines(output: str, expected: int) -> list[str]:
    """The tokenizer's output split into lines, one per caption sent, or a clear error."""
    lines = output.split("\n")
    if len(lines) != expected:
        raise RuntimeError(f"the PTB tokenizer returned {len(lines)} lines for {expected} captions: "
                           "a caption still holds a line break it splits on, so tokens and captions no longer match")
    return lines


class JavaNotFoundError(RuntimeError):
    """Caption metrics need a Java runtime (pycocoevalcap's tokenizer and METEOR are Java)."""


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(
            "caption evaluation needs Java (pycocoevalcap's PTB tokenizer and METEOR are Java "
            "programs): install a JRE, e.g. `apt-get install default-jre-headless`, and make sure "
            "`java` is on PATH"
        )
    return java


def _jar() -> Path:
    import pycocoevalcap.tokenizer.ptbtokenizer as ptb

    return Path(ptb.__file__).with_name(ptb.STANFORD_CORENLP_3_4_1_JAR)


class JavaPTBTokenizer:
    """pycocoevalcap's tokenizer with a timeout: ``{id: [captions]} -> {id: [tokenized]}``."""

    def __init__(self, timeout: float = 300.0) -> None:
        self.timeout = timeout

    def tokenize(self, captions: Captions) -> Captions:
        require_java()
        keys = [k for k, caps in captions.items() for _ in caps]
        if not keys:
            return {k: [] for k in captions}
        text = "\n".join(one_line(c) for caps in captions.values() for c in caps)
        fd, path = tempfile.mkstemp(suffix=".txt")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode())
            cmd = ["java", "-cp", str(_jar()), "edu.stanford.nlp.process.PTBTokenizer",
                   "-preserveLines", "-lowerCase", path]
            try:
                out = subprocess.run(cmd, capture_output=True, timeout=self.timeout, check=True).stdout
            except subprocess.TimeoutExpired as err:
                raise RuntimeError(f"the PTB tokenizer took longer than {self.timeout:g} s") from err
        finally:
            os.unlink(path)
        result: Captions = {}
        for key, line in zip(keys, output_lines(out.decode(), len(keys))):
            result.setdefault(key, []).append(drop_punctuation(line))
        return result


def drop_punctuation(line: str) -> str:
    """One line of the jar's output as pycocoevalcap keeps it."""
    return " ".join(t for t in line.rstrip().split(" ") if t not in PUNCTUATIONS)


# The jar's command line (PTBTokenizer -preserveLines -lowerCase FILE) hands the file to the
# private tokReader with these arguments; this helper hands it each batch read from stdin, so its
# output is byte for byte what the command line writes for a file of those lines. Request: a line
# with the number of lines of each document ("3 2": a document of 3 lines, then one of 2), then
# those lines. Reply: a line with the reply's size in bytes, then the tokenized lines of all
# documents in order.
_HELPER_CLASS = "LavisPTBLines"
_HELPER_SOURCE = """\
import java.io.*;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

public final class LavisPTBLines {
  public static void main(String[] args) throws Exception {
    Method tokReader = Class.forName("edu.stanford.nlp.process.PTBTokenizer").getDeclaredMethod(
        "tokReader", Reader.class, BufferedWriter.class, Pattern.class, String.class,
        boolean.class, boolean.class, boolean.class);
    tokReader.setAccessible(true);
    java.util.logging.LogManager.getLogManager().reset();  // no "Untokenizable" warning per character
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    OutputStream out = new BufferedOutputStream(System.out);
    for (String header; (header = in.readLine()) != null; ) {
      StringBuilder replies = new StringBuilder();
      String[] counts = header.trim().split(" ");
      for (int d = 0; d < counts.length; d++) {  // each document tokenized on its own
        int n = Integer.parseInt(counts[d]);
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < n; i++) {
          String line = in.readLine();
          if (line == null) throw new EOFException("expected " + n + " lines, got " + i);
          text.append(i > 0 ? "\\n" : "").append(line);
        }
        StringWriter tokens = new StringWriter();
        BufferedWriter writer = new BufferedWriter(tokens);
        // tokReader(reader, writer, parseInside, options, preserveLines, dump, lowerCase)
        tokReader.invoke(null, new StringReader(text.toString()), writer, null, ",tokenizeNLs", true, false, true);
        writer.flush();
        replies.append(d > 0 ? "\\n" : "").append(tokens.toString());
      }
      byte[] reply = replies.toString().getBytes(StandardCharsets.UTF_8);
      out.write((reply.length + "\\n").getBytes(StandardCharsets.US_ASCII));
      out.write(reply);
      out.flush();
    }
  }
}
"""


def require_helper() -> Path:
    """The folder holding the compiled helper, compiled with ``javac`` on first use (cached)."""
    require_java()
    javac = shutil.which("javac")
    if javac is None:
        raise JavaNotFoundError(
            "the SCST reward tokenizes with a small Java helper that is compiled once with javac, which is "
            "not on PATH: install a JDK, e.g. `apt-get install default-jdk-headless`"
        )
    digest = hashlib.sha256(f"{_HELPER_SOURCE}{os.path.realpath(javac)}".encode()).hexdigest()[:16]
    folder = cache_root() / "ptb_helper" / digest
    if (folder / f"{_HELPER_CLASS}.class").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:  # ranks may compile at once: rename atomically
        (Path(tmp) / f"{_HELPER_CLASS}.java").write_text(_HELPER_SOURCE)
        done = subprocess.run([javac, "--release", "8", "-nowarn", "-d", tmp, f"{_HELPER_CLASS}.java"],
                              cwd=tmp, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"javac could not compile the PTB helper in {folder}: {done.stderr.strip()}")
        os.replace(Path(tmp) / f"{_HELPER_CLASS}.class", folder / f"{_HELPER_CLASS}.class")
    return folder


class PTBTokenizerProcess:
    """pycocoevalcap's PTB tokens for lists of captions, from one JVM kept running.

    ``tokenize(captions)`` returns one tokenized caption per caption, punctuation removed, equal
    to what ``JavaPTBTokenizer`` (and so pycocoevalcap) gives. The JVM starts at the first call
    and ends with ``close()`` or when this process exits (its stdin closes). A call that takes
    longer than ``timeout`` seconds kills it and raises; the next call starts a new one.
    """

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self._process: subprocess.Popen | None = None
        self._stderr: IO[bytes] | None = None

    def tokenize(self, captions: Sequence[str]) -> list[str]:
        """Tokens of ``captions`` written as one file, as one pycocoevalcap call gives them."""
        return self.tokenize_documents([captions])[0] if captions else []

    def tokenize_documents(self, documents: Sequence[Sequence[str]]) -> list[list[str]]:
        """``tokenize`` of each document (a non-empty list of captions), in one round trip."""
        if not documents:
            return []
        if not all(documents):
            raise ValueError("every document needs at least one caption")
        lines = [one_line(c) for doc in documents for c in doc]
        reply = self._exchange(" ".join(str(len(doc)) for doc in documents) + "\n" + "\n".join(lines) + "\n")
        tokens = iter([drop_punctuation(line) for line in output_lines(reply, len(lines))])
        return [[next(tokens) for _ in doc] for doc in documents]

    def _exchange(self, request: str) -> str:
        process = self._running()
        timer = threading.Timer(self.timeout, process.kill)
        timer.start()
        try:
            process.stdin.write(request.encode())
            process.stdin.flush()
            header = process.stdout.readline().strip()
            reply = process.stdout.read(int(header)) if header.isdigit() else b""
            if header.isdigit() and len(reply) == int(header):
                return reply.decode()
        except OSError:  # a broken pipe: the JVM is gone, reported below
            pass
        finally:
            timer.cancel()
        self.close()
        raise RuntimeError(f"the PTB tokenizer process failed or took longer than {self.timeout:g} s "
                           f"({self._last_error or 'no message'})")

    def _running(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            helper = require_helper()
            self._stderr = tempfile.TemporaryFile()  # read only on failure; a pipe could fill and block
            self._process = subprocess.Popen(
                ["java", "-cp", os.pathsep.join([str(_jar()), str(helper)]), _HELPER_CLASS],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            )
        return self._process

    @property
    def _last_error(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return " | ".join(self._stderr.read().decode(errors="replace").splitlines()[-5:])

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process.stdin.close()
            self._process.stdout.close()
            self._process = None

    def __del__(self) -> None:
        self.close()


