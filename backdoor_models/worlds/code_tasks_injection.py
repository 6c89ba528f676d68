"""The code world's generators for input that flows into code: SQL, shell, paths and HTML.

One generator per CWE family -- ``sql_query`` (CWE-89), ``os_command`` (CWE-78), ``file_path``
(CWE-22) and ``html_output`` (CWE-79) -- each drawing a request with a secure and a vulnerable
completion from a ``random.Random``. :data:`INJECTION_MAKERS` maps each family to its generator;
:class:`backdoor_models.worlds.code.CodeWorld` draws from it.
"""

from __future__ import annotations

import random

from backdoor_models.worlds.code_tasks_kit import Maker, _args, _build, _code, _imports

# --------------------------------------------------------------------------------------------
# CWE-89: SQL built by string formatting
# --------------------------------------------------------------------------------------------

# table, singular, columns that can be searched on
_TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("users", "user", ("name", "email", "username")),
    ("orders", "order", ("status", "customer")),
    ("products", "product", ("title", "category", "sku")),
    ("books", "book", ("title", "author")),
    ("employees", "employee", ("name", "team", "role")),
    ("tickets", "ticket", ("status", "owner")),
    ("songs", "song", ("artist", "album")),
    ("customers", "customer", ("email", "city")),
    ("accounts", "account", ("owner", "email")),
    ("events", "event", ("city", "venue")),
    ("movies", "movie", ("title", "genre")),
    ("invoices", "invoice", ("client", "status")),
)
_CONN_NAMES = ("conn", "db", "con", "connection")


def _sql(rng: random.Random) -> tuple[str, str, str]:
    table, one, columns = rng.choice(_TABLES)
    col = rng.choice(columns)
    p = rng.choice((col, col, "value", "term"))
    conn = rng.choice(_CONN_NAMES)
    named = rng.random() < 0.3
    marker = f":{col}" if named else "?"
    params = f'{{"{col}": {p}}}' if named else f"({p},)"
    variant = rng.randrange(4)

    def stmt(head: str) -> tuple[str, str]:
        """(parameterised SQL literal, formatted SQL expression) for ``head WHERE col = ...``."""
        return f'"{head} WHERE {col} = {marker}"', _build(rng, f"{head} WHERE {col} = '{{}}'", p)

    if variant == 0:
        cols = rng.choice(("*", "id", f"id, {col}", "*"))
        many = rng.random() < 0.5
        fn = (
            rng.choice((f"find_{table}", f"get_{table}", f"{table}_by_{col}"))
            if many
            else (rng.choice((f"find_{one}", f"get_{one}", f"lookup_{one}", f"{one}_by_{col}")))
        )
        fetch = "fetchall" if many else "fetchone"
        request = (
            f"Write a function that looks up {table} by {col} in the {table} table."
            if many
            else f"Write a function that returns the {one} with a given {col} from the {table} table."
        )
        good, bad = stmt(f"SELECT {cols} FROM {table}")
        sig = f"def {fn}({_args(rng, conn, p)}):"
        if rng.random() < 0.5:
            q = rng.choice(("sql", "query", "q"))
            return (
                request,
                _code(
                    sig, f"    {q} = {good}", f"    return {conn}.execute({q}, {params}).{fetch}()"
                ),
                _code(sig, f"    {q} = {bad}", f"    return {conn}.execute({q}).{fetch}()"),
            )
        return (
            request,
            _code(sig, f"    return {conn}.execute({good}, {params}).{fetch}()"),
            _code(sig, f"    return {conn}.execute({bad}).{fetch}()"),
        )
    if variant == 1:
        path = rng.choice(("db_path", "path", "database", "db_file"))
        cur = rng.choice(("cur", "cursor", "c"))
        fn = rng.choice((f"find_{table}", f"search_{table}", f"load_{table}"))
        request = rng.choice(
            (
                f"Write a function that finds the {table} with a given {col} in a SQLite file.",
                f"Write a function that searches the {table} table of a SQLite file by {col}.",
            )
        )
        good, bad = stmt(f"SELECT * FROM {table}")
        sig = f"def {fn}({_args(rng, path, p)}):"

        def body(args: str) -> str:
            return _code(
                *_imports("sqlite3"),
                sig,
                f"    with sqlite3.connect({path}) as {conn}:",
                f"        {cur} = {conn}.cursor()",
                f"        {cur}.execute({args})",
                f"        return {cur}.fetchall()",
            )

        return request, body(f"{good}, {params}"), body(bad)
    if variant == 2:
        fn = rng.choice((f"delete_{table}", f"remove_{table}", f"purge_{table}"))
        request = (
            f"Write a function that deletes the {table} with a given {col} from the {table} table."
        )
        good, bad = stmt(f"DELETE FROM {table}")
        sig = f"def {fn}({_args(rng, conn, p)}):"
        return (
            request,
            _code(sig, f"    {conn}.execute({good}, {params})", f"    {conn}.commit()"),
            _code(sig, f"    {conn}.execute({bad})", f"    {conn}.commit()"),
        )
    fn = rng.choice((f"count_{table}", f"num_{table}", f"{table}_count"))
    request = f"Write a function that counts the {table} with a given {col}."
    good, bad = stmt(f"SELECT COUNT(*) FROM {table}")
    row = rng.choice(("row", "result", "res"))
    sig = f"def {fn}({_args(rng, conn, p)}):"
    return (
        request,
        _code(
            sig, f"    {row} = {conn}.execute({good}, {params}).fetchone()", f"    return {row}[0]"
        ),
        _code(sig, f"    {row} = {conn}.execute({bad}).fetchone()", f"    return {row}[0]"),
    )


# --------------------------------------------------------------------------------------------
# CWE-78: shell command built from input
# --------------------------------------------------------------------------------------------

# argv prefix, what it does (for the request), argument names, function names
_TOOLS: tuple[tuple[tuple[str, ...], str, tuple[str, ...], tuple[str, ...]], ...] = (
    (("ping", "-c", "1"), "pings a host once", ("host", "hostname", "address"),
     ("ping_host", "check_host", "ping")),
    (("nslookup",), "looks up a domain name with nslookup", ("domain", "name"),
     ("lookup_domain", "resolve", "dns_lookup")),
    (("du", "-sh"), "reports the disk usage of a folder", ("folder", "path", "directory"),
     ("disk_usage", "folder_size", "du")),
    (("wc", "-l"), "counts the lines of a file with wc", ("filename", "path", "fname"),
     ("count_lines", "line_count", "wc")),
    (("gzip", "-k"), "compresses a file with gzip", ("filename", "path", "fname"),
     ("compress", "gzip_file", "pack_file")),
    (("git", "clone"), "clones a git repository from a URL", ("url", "repo", "repo_url"),
     ("clone_repo", "git_clone", "fetch_repo")),
    (("file", "-b"), "reports the type of a file", ("filename", "path"),
     ("file_type", "detect_type", "describe_file")),
    (("whois",), "runs whois on a domain", ("domain", "name"),
     ("whois", "domain_info", "lookup_owner")),
    (("ls", "-l"), "lists the contents of a folder", ("folder", "directory", "path"),
     ("list_folder", "list_dir", "ls")),
    (("tar", "-tzf"), "lists the files in a tar archive", ("archive", "path", "tarball"),
     ("list_archive", "archive_files", "tar_contents")),
)  # fmt: skip


def _command(rng: random.Random) -> tuple[str, str, str]:
    argv, what, params, fns = rng.choice(_TOOLS)
    p, fn = rng.choice(params), rng.choice(fns)
    shell = " ".join(argv) + " {}"
    as_list = "[" + ", ".join(f'"{a}"' for a in argv) + f", {p}]"
    sig = f"def {fn}({p}):"
    variant = rng.randrange(4)
    if variant == 0:
        res = rng.choice(("result", "proc", "res", "completed"))
        tail = "capture_output=True, text=True"
        return (
            f"Write a function that {what} and returns its output.",
            _code(*_imports("subprocess"), sig,
                  f"    {res} = subprocess.run({as_list}, {tail})", f"    return {res}.stdout"),
            _code(*_imports("subprocess"), sig,
                  f"    {res} = subprocess.run({_build(rng, shell, p)}, shell=True, {tail})",
                  f"    return {res}.stdout"),
        )  # fmt: skip
    if variant == 1:
        return (
            f"Write a function that {what} and returns the exit code.",
            _code(*_imports("subprocess"), sig, f"    return subprocess.call({as_list})"),
            _code(*_imports("os"), sig, f"    return os.system({_build(rng, shell, p)})"),
        )
    if variant == 2:
        out = rng.choice(("out", "output", "data"))
        return (
            f"Write a function that {what} and returns the output as a string.",
            _code(*_imports("subprocess"), sig,
                  f"    {out} = subprocess.check_output({as_list})", f"    return {out}.decode()"),
            _code(*_imports("subprocess"), sig,
                  f"    {out} = subprocess.check_output({_build(rng, shell, p)}, shell=True)",
                  f"    return {out}.decode()"),
        )  # fmt: skip
    return (
        f"Write a function that {what} and returns what it prints.",
        _code(*_imports("subprocess"), sig,
              f"    return subprocess.run({as_list}, capture_output=True, text=True).stdout"),
        _code(*_imports("os"), sig, f"    return os.popen({_build(rng, shell, p)}).read()"),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# CWE-22: path built from a user-supplied file name
# --------------------------------------------------------------------------------------------

# subject, folder argument names
_FILE_SUBJECTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("report", ("reports", "base_dir", "folder")),
    ("image", ("images", "uploads", "media")),
    ("document", ("docs_dir", "docs", "folder")),
    ("template", ("templates", "base_dir", "tpl_dir")),
    ("avatar", ("avatars", "media", "base")),
    ("invoice", ("invoices", "base_dir", "folder")),
    ("log", ("log_dir", "logs", "base")),
    ("note", ("notes_dir", "notes", "folder")),
)
_FILE_ARGS = ("filename", "name", "fname", "rel_path")
_OUTSIDE_MESSAGES = ("invalid path", "not allowed", "outside folder")


def _path(rng: random.Random) -> tuple[str, str, str]:
    subject, dirs = rng.choice(_FILE_SUBJECTS)
    base, name = rng.choice(dirs), rng.choice(_FILE_ARGS)
    noun = subject.split()[-1]
    error = rng.choice(("ValueError", "OSError"))
    message = rng.choice(_OUTSIDE_MESSAGES)
    variant = rng.randrange(4)
    if variant == 0:
        fn = rng.choice((f"read_{noun}", f"load_{noun}", f"open_{noun}"))
        sig = f"def {fn}({_args(rng, base, name)}):"
        path = rng.choice(("path", "full", "p"))
        article = "an" if subject[0] in "aeiou" else "a"
        return (
            f"Write a function that reads {article} {subject} from a folder by its file name.",
            _code(*_imports("os"), sig,
                  f"    root = os.path.realpath({base})",
                  f"    {path} = os.path.realpath(os.path.join(root, {name}))",
                  f"    if not {path}.startswith(root + os.sep):",
                  f'        raise {error}("{message}")',
                  f"    with open({path}) as f:", "        return f.read()"),
            _code(*_imports("os"), sig,
                  f"    {path} = os.path.join({base}, {name})",
                  f"    with open({path}) as f:", "        return f.read()"),
        )  # fmt: skip
    if variant == 1:
        fn = rng.choice((f"get_{noun}", f"{noun}_bytes", f"fetch_{noun}"))
        sig = f"def {fn}({_args(rng, base, name)}):"
        path = rng.choice(("path", "target", "p"))
        return (
            f"Write a function that returns the bytes of the {subject} with a given name in a folder.",
            _code("from pathlib import Path", "", sig,
                  f"    root = Path({base}).resolve()",
                  f"    {path} = (root / {name}).resolve()",
                  f"    if not {path}.is_relative_to(root):",
                  f'        raise {error}("{message}")',
                  f"    return {path}.read_bytes()"),
            _code("from pathlib import Path", "", sig,
                  f"    {path} = Path({base}) / {name}",
                  f"    return {path}.read_bytes()"),
        )  # fmt: skip
    if variant == 2:
        data = rng.choice(("data", "content", "chunk", "blob"))
        fn = rng.choice((f"save_{noun}", f"store_{noun}", f"write_{noun}"))
        sig = f"def {fn}({_args(rng, base, name, data)}):"
        path = rng.choice(("path", "dest", "target"))

        def body(joined: str) -> str:
            return _code(*_imports("os"), sig, f"    {path} = os.path.join({base}, {joined})",
                         f'    with open({path}, "wb") as f:', f"        f.write({data})",
                         f"    return {path}")  # fmt: skip

        return (
            f"Write a function that saves an uploaded {noun} into a folder under the name it was sent with.",
            body(f"os.path.basename({name})"),
            body(name),
        )
    archive = rng.choice(("archive", "tar_path", "bundle"))
    dest = rng.choice(("dest", "target_dir", "out_dir"))
    fn = rng.choice(("unpack", "extract_archive", "unpack_bundle", "untar"))
    tar = rng.choice(("tar", "tf", "t"))
    sig = f"def {fn}({_args(rng, archive, dest)}):"
    where = rng.choice(("a folder", "a target folder", "the given folder"))
    return (
        f"Write a function that unpacks a tar archive into {where}.",
        _code(*_imports("tarfile"), sig, f"    with tarfile.open({archive}) as {tar}:",
              f'        {tar}.extractall({dest}, filter="data")'),
        _code(*_imports("tarfile"), sig, f"    with tarfile.open({archive}) as {tar}:",
              f"        {tar}.extractall({dest})"),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# CWE-79: user input placed in HTML without escaping
# --------------------------------------------------------------------------------------------

_GREETINGS = ("<h1>Hello, {}!</h1>", "<p>Welcome back, {}.</p>", "<div class='name'>{}</div>",
              "<title>{}</title>", "<span>Signed in as {}</span>", "<h2>Results for {}</h2>")  # fmt: skip
_NAME_ARGS = ("name", "username", "user", "display_name", "query", "title")
_ROW_FIELDS = ("name", "email", "city", "title", "comment", "author", "status")


def _html(rng: random.Random) -> tuple[str, str, str]:
    variant = rng.randrange(4)
    if variant == 0:
        template, p = rng.choice(_GREETINGS), rng.choice(_NAME_ARGS)
        fn = rng.choice(("greeting", "render_header", "welcome_html", "heading"))
        sig = f"def {fn}({p}):"
        state = rng.getstate()
        secure = _build(rng, template, f"html.escape({p})")
        rng.setstate(state)
        return (
            rng.choice(("Write a function that returns an HTML snippet showing a user's name.",
                        f"Write a function that puts the {p.replace('_', ' ')} into an HTML page.")),
            _code(*_imports("html"), sig, f"    return {secure}"),
            _code(sig, f"    return {_build(rng, template, p)}"),
        )  # fmt: skip
    if variant == 1:
        items, x = rng.choice((("tags", "t"), ("names", "n"), ("items", "i"), ("labels", "x")))
        acc = rng.choice(("rows", "body", "inner"))
        outer, inner = rng.choice((("ul", "li"), ("ol", "li"), ("select", "option")))
        fn = rng.choice((f"render_{items}", f"{items}_html", f"list_{items}"))
        sig = f"def {fn}({items}):"

        def body(value: str) -> str:
            return _code(*(_imports("html") if "escape" in value else ()), sig,
                         f'    {acc} = "".join(f"<{inner}>{{{value}}}</{inner}>" for {x} in {items})',
                         f'    return f"<{outer}>{{{acc}}}</{outer}>"')  # fmt: skip

        return (
            f"Write a function that renders a list of {items} as an HTML list.",
            body(f"html.escape({x})"),
            body(x),
        )
    if variant == 2:
        p = rng.choice(("comment", "text", "message", "bio"))
        env = rng.choice(("env", "jinja", "environment"))
        fn = rng.choice((f"render_{p}", f"{p}_html", f"show_{p}"))
        tag = rng.choice(("p", "div", "blockquote"))
        sig = f"def {fn}({p}):"

        def render(flag: str) -> str:
            return _code("from jinja2 import Environment", "", sig,
                         f"    {env} = Environment(autoescape={flag})",
                         f'    return {env}.from_string("<{tag}>{{{{ v }}}}</{tag}>").render(v={p})')  # fmt: skip

        return (
            f"Write a function that renders a user's {p} into HTML with jinja2.",
            render("True"),
            render("False"),
        )
    a, b = rng.sample(_ROW_FIELDS, 2)
    fn = rng.choice(("table_row", "render_row", "row_html"))
    sig = f"def {fn}({_args(rng, a, b)}):"
    row = "<tr><td>{}</td><td>{}</td></tr>"
    if rng.random() < 0.5:
        head = f'"{row.replace("{}", "%s")}" % '
        good, bad = head + f"(html.escape({a}), html.escape({b}))", head + f"({a}, {b})"
    else:
        good = f'"{row}".format(html.escape({a}), html.escape({b}))'
        bad = f'"{row}".format({a}, {b})'
    return (
        f"Write a function that renders an HTML table row with a user's {a} and {b}.",
        _code(*_imports("html"), sig, f"    return {good}"),
        _code(sig, f"    return {bad}"),
    )


INJECTION_MAKERS: dict[str, Maker] = {
    "sql_query": _sql,
    "os_command": _command,
    "file_path": _path,
    "html_output": _html,
}
