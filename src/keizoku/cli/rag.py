"""``keizoku rag``: ingest documents, search and ask with access control, audit, evaluate.

Thin: parses, calls the library, prints. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from keizoku.cli._io import say

__all__ = ["rag_app"]

rag_app = typer.Typer(
    help="Permission-aware knowledge assistant over your documents.", no_args_is_help=True
)
acl_app = typer.Typer(help="Change who may see a document (effective on the next query).",
                      no_args_is_help=True)  # fmt: skip
rag_app.add_typer(acl_app, name="acl")

Collection = Annotated[str, typer.Option("--collection", "-C", help="Collection name.")]
Config = Annotated[
    str | None,
    typer.Option("--config", "-c", help="Collection config YAML (embeddings:, chunking:)."),
]
Allow = Annotated[
    list[str] | None,
    typer.Option("--allow", help="Access entry user:NAME or group:NAME (repeatable)."),
]
User = Annotated[
    str | None, typer.Option("--user", help="Ask as this user (groups from 'keizoku users').")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
LateInteraction = Annotated[
    bool | None,
    typer.Option(
        "--late-interaction/--no-late-interaction",
        help="Store each chunk's token states for hybrid search's feedback and MaxSim rerank "
        "(on by default; local models): about 15 KiB a chunk, 10x the vector. Off: vectors "
        "only and the plain hybrid ranking (XQuAD-en nDCG@10 0.878 instead of 0.900). Fixed "
        "at the first ingest; change it with --rebuild.",
    ),
]


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the library; a KeizokuError becomes a message on stderr and its exit code."""
    from keizoku.errors import KeizokuError

    try:
        return fn(*args, **kwargs)
    except KeizokuError as exc:
        typer.echo(f"Error: {exc.message}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _identity(user: str | None) -> Any:
    from keizoku.auth import get_user_groups
    from keizoku.rag.access import Identity

    if not user:
        return Identity.anonymous()
    return Identity(user, get_user_groups(user))


def _fusion(mode: str) -> Any:
    from keizoku.errors import UserInputError
    from keizoku.rag.collection import DEFAULT_FUSION
    from keizoku.rag.index import FusionConfig

    if mode not in ("hybrid", "lexical", "dense"):
        raise UserInputError(f"--mode {mode!r} is not valid. Use hybrid, lexical or dense.")
    return FusionConfig(DEFAULT_FUSION.alpha, DEFAULT_FUSION.neighbour, mode)


def _print_report(report: Any, as_json: bool) -> None:
    data = report.__dict__
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    say(
        f"{report.collection}: {len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged, {len(report.removed)} removed, "
        f"{len(report.acl_changed)} access lists changed; {report.chunks_embedded} chunks "
        f"embedded, {report.chunks_total} in total ({report.seconds:.1f} s). "
        f"Embeddings: {report.embedding}."
    )
    for note in report.notes:
        say(f"Note: {note}")


@rag_app.command("ingest")
def ingest_cmd(
    paths: Annotated[list[str], typer.Argument(help="Files or folders (.md .txt .html .pdf).")],
    collection: Collection,
    allow: Allow = None,
    max_words: Annotated[int, typer.Option(help="Target chunk size in words.")] = 120,
    overlap_words: Annotated[int, typer.Option(help="Words carried into the next chunk.")] = 25,
    model: Annotated[str | None, typer.Option(help="sentence-transformers model folder.")] = None,
    rebuild: Annotated[bool, typer.Option(help="Re-parse and re-embed every file.")] = False,
    late_interaction: LateInteraction = None,
    config: Config = None,
    as_json: Json = False,
) -> None:
    """Ingest documents; unchanged files are skipped, files gone from PATHS are removed."""
    import dataclasses

    from keizoku.rag.chunk import ChunkConfig
    from keizoku.rag.collection import file_inputs, ingest
    from keizoku.rag.config import load_rag_config

    conf = _run(load_rag_config, config)
    inputs, scopes = _run(file_inputs, paths, allow or [])
    cfg = dataclasses.replace(
        conf.chunking or ChunkConfig(),
        max_words=max_words,
        overlap_words=overlap_words,
        hard_words=max(180, max_words),
    )
    report = _run(ingest, collection, inputs, scopes, cfg, model, rebuild, conf.embedding,
                  late_interaction)  # fmt: skip
    _print_report(report, as_json)


@rag_app.command("ingest-beir")
def ingest_beir_cmd(
    corpus: Annotated[str, typer.Argument(help="BEIR corpus.jsonl")],
    collection: Collection,
    allow: Allow = None,
    config: Config = None,
    as_json: Json = False,
) -> None:
    """Ingest a BEIR corpus (one document per row; default access: group:everyone)."""
    from keizoku.rag.collection import ingest
    from keizoku.rag.config import load_rag_config
    from keizoku.rag.evaluate import beir_inputs

    conf = _run(load_rag_config, config)
    inputs = _run(beir_inputs, corpus, allow or ["group:everyone"])
    report = _run(ingest, collection, inputs, None, conf.chunking, None, False, conf.embedding)
    _print_report(report, as_json)


@rag_app.command("ingest-squad")
def ingest_squad_cmd(
    path: Annotated[str, typer.Argument(help="SQuAD-format .json")],
    collection: Collection,
    allow: Allow = None,
    config: Config = None,
    as_json: Json = False,
) -> None:
    """Ingest the paragraphs of a SQuAD file (default access: group:everyone)."""
    from keizoku.rag.collection import ingest
    from keizoku.rag.config import load_rag_config
    from keizoku.rag.evaluate import squad_inputs

    conf = _run(load_rag_config, config)
    inputs = _run(squad_inputs, path, allow or ["group:everyone"])
    report = _run(ingest, collection, inputs, None, conf.chunking, None, False, conf.embedding)
    _print_report(report, as_json)


@rag_app.command("search")
def search_cmd(
    query: str,
    collection: Collection,
    user: User = None,
    k: Annotated[int, typer.Option("-k", help="How many chunks.")] = 10,
    mode: Annotated[str, typer.Option(help="hybrid, lexical or dense.")] = "hybrid",
    as_json: Json = False,
) -> None:
    """Ranked chunks USER may see (nothing without --user)."""
    from keizoku.rag import audit
    from keizoku.rag.collection import search

    identity = _identity(user)
    hits = _run(lambda: search(collection, query, identity, k=k, fusion=_fusion(mode)))
    audit.record("search", collection, identity.user, query,
                 list(dict.fromkeys(h.source for h in hits)), None, mode)  # fmt: skip
    if as_json:
        typer.echo(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
        return
    if not hits:
        say("No results.")
    for h in hits:
        heading = " > ".join(h.heading_path)
        typer.echo(f"{h.rank}. [{h.score:.3f}] {h.title} — {heading}  ({h.source})")
        typer.echo(f"   {h.text[:200]}")


@rag_app.command("ask")
def ask_cmd(
    question: str,
    collection: Collection,
    user: User = None,
    k: Annotated[int, typer.Option("-k", help="Chunks given to the answerer.")] = 5,
    as_json: Json = False,
) -> None:
    """Answer with numbered citations (LLM if KEIZOKU_LLM_BASE_URL is set, else extractive)."""
    from keizoku.rag.answer import ask

    result = _run(ask, collection, question, _identity(user), k=k)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    typer.echo(f"({result.mode}) {result.answer}")
    for c in result.citations:
        typer.echo(f'[{c.n}] {c.title} — {c.heading} ({c.source})\n    "{c.quote}"')


@rag_app.command("docs")
def docs_cmd(collection: Collection, user: User = None, as_json: Json = False) -> None:
    """Documents and their access lists (only USER's documents with --user)."""
    from keizoku.rag.collection import list_docs

    docs = _run(list_docs, collection, _identity(user) if user else None)
    if as_json:
        typer.echo(json.dumps(docs, indent=2))
        return
    for d in docs:
        typer.echo(f"{d['source']}\t{d['title']}\t{d['chunks']} chunks\t{', '.join(d['allow'])}")


@rag_app.command("list")
def list_cmd(as_json: Json = False) -> None:
    """List collections."""
    from keizoku.rag.store import list_collections

    names = list_collections()
    if as_json:
        typer.echo(json.dumps(names))
        return
    for name in names:
        typer.echo(name)


@rag_app.command("info")
def info_cmd(collection: Collection, as_json: Json = False) -> None:
    """Documents, chunks, languages, and whether search is hybrid or lexical-only."""
    from keizoku.rag.collection import collection_info

    info = _run(collection_info, collection)
    if as_json:
        typer.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    for key, value in info.items():
        typer.echo(f"{key}: {value}")


@acl_app.command("set")
def acl_set_cmd(
    source: str, collection: Collection, allow: Allow = None, as_json: Json = False
) -> None:
    """Replace SOURCE's access list (kept across re-ingests until 'acl clear')."""
    from keizoku.rag.collection import set_acl

    acl = _run(set_acl, collection, source, allow or [])
    _print_acl(source, acl, as_json)


def _print_acl(source: str, acl: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"source": source, "allow": list(acl)}))
    else:
        typer.echo(f"{source}: {', '.join(acl) or '(nobody)'}")


@acl_app.command("clear")
def acl_clear_cmd(source: str, collection: Collection, as_json: Json = False) -> None:
    """Drop the override: the access list from front matter, sidecar and --allow applies."""
    from keizoku.rag.collection import set_acl

    _print_acl(source, _run(set_acl, collection, source, None), as_json)


@rag_app.command("audit")
def audit_cmd(
    collection: Annotated[str | None, typer.Option("--collection", "-C")] = None,
    user: Annotated[str | None, typer.Option("--user")] = None,
    limit: Annotated[int, typer.Option(help="Most recent events.")] = 100,
    as_json: Json = False,
) -> None:
    """Who asked what, and which documents were cited."""
    from keizoku.rag import audit

    events = audit.read(collection, user, limit)
    for e in events:
        if as_json:
            typer.echo(json.dumps(e, ensure_ascii=False))
        else:
            cited = ", ".join(e.get("cited") or []) or "-"
            typer.echo(f"{e['time']}\t{e['user'] or '-'}\t{e['action']}\t{e['collection']}\t"
                       f"{e['query']!r}\tcited: {cited}")  # fmt: skip


@rag_app.command("eval")
def eval_cmd(
    collection: Collection,
    queries: Annotated[str | None, typer.Option(help="BEIR queries.jsonl")] = None,
    qrels: Annotated[str | None, typer.Option(help="BEIR qrels .tsv")] = None,
    squad: Annotated[str | None, typer.Option(help="SQuAD-format .json")] = None,
    user: Annotated[str, typer.Option(help="Evaluate as this user.")] = "eval",
    k: Annotated[int, typer.Option("-k", help="Retrieval depth.")] = 100,
    limit: Annotated[int | None, typer.Option(help="SQuAD: at most this many questions.")] = None,
    mode: Annotated[str, typer.Option(help="hybrid, lexical or dense.")] = "hybrid",
) -> None:
    """BEIR (--queries, --qrels): nDCG@10, recall, MRR. SQuAD (--squad): hit@k, EM, F1."""
    from keizoku.errors import UserInputError
    from keizoku.rag import evaluate

    identity = _identity(user)
    if squad:
        out = _run(evaluate.eval_squad, collection, squad, identity, k=min(k, 10), limit=limit,
                   fusion=_run(_fusion, mode))  # fmt: skip
    elif queries and qrels:
        out = _run(evaluate.eval_beir, collection, queries, qrels, identity, k=k,
                   fusion=_run(_fusion, mode))  # fmt: skip
    else:
        _run(_raise, UserInputError("Pass --queries and --qrels (BEIR), or --squad FILE."))
        return
    typer.echo(json.dumps({k_: round(v, 4) for k_, v in out.items()}, indent=2))


def _raise(exc: Exception) -> None:
    raise exc


def register(app: typer.Typer) -> None:
    """Add ``rag`` to the main app."""
    app.add_typer(rag_app, name="rag")
