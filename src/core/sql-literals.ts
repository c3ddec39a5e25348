// A failed statement's literal values never reach output or history: knex
// reports a failed query as `<statement> - <PostgreSQL's message>`, with the
// statement's bindings written into it, so a failing
// `create role x password 'secret'` would otherwise show the secret.

/** The statement's first word, for the statements a migration runs (and knex's own). */
const STATEMENT_START =
  /^[\s(]*(?:select|insert|update|delete|merge|create|alter|drop|grant|revoke|with|do|comment|truncate|copy|call|lock|set|reset|begin|start|commit|rollback|savepoint|release|vacuum|analyze|analyse|refresh|reindex|cluster|explain|prepare|execute|declare|notify|listen|security|import|values|table|discard|checkpoint|load|reassign)\b/i;

interface Literal {
  start: number;
  end: number;
  /** The value it stands for. */
  value: string;
  /** As written between the quotes. */
  raw: string;
}

/** The string values bound to a failed statement, by its error (knex keeps them out of the message). */
const boundValues = new WeakMap<object, string[]>();

/** Remembers a failed query's bindings, to mask them where PostgreSQL's message repeats them. */
export function rememberBindings(error: unknown, bindings: unknown): void {
  if (typeof error !== "object" || error === null || !Array.isArray(bindings)) return;
  boundValues.set(
    error,
    bindings.filter((b): b is string => typeof b === "string" && b !== ""),
  );
}

/** withoutStatementLiterals, also masking the values bound to the statement that `error` reports. */
export function withoutStatementValues(text: string, error: unknown): string {
  let out = withoutStatementLiterals(text);
  const values = typeof error === "object" && error !== null ? boundValues.get(error) : undefined;
  for (const value of values ?? []) out = maskEchoes(out, value);
  return out;
}

/**
 * `<statement> - <message>` with every string literal of the statement
 * replaced by '***' and those values masked where the message repeats them
 * (`invalid input syntax for type integer: "secret"`, `Key (email)=(…)`).
 * Any other text is returned as it is.
 */
export function withoutStatementLiterals(text: string): string {
  const { literals, separators } = scan(text);
  const split = separators.at(-1);
  if (split === undefined || literals.length === 0) return text;
  const statement = text.slice(0, split);
  if (!STATEMENT_START.test(statement)) return text;
  let masked = "";
  let from = 0;
  for (const literal of literals) {
    if (literal.end > split) break;
    if (literal.value === "") continue;
    masked += `${text.slice(from, literal.start)}'***'`;
    from = literal.end;
  }
  masked += text.slice(from, split);
  let message = text.slice(split);
  for (const literal of literals) {
    if (literal.end > split || literal.value === "") continue;
    // PostgreSQL repeats a value decoded (`"it's"`) or as written (`"'it\'s'"`).
    message = maskEchoes(maskEchoes(message, literal.raw), literal.value);
  }
  return masked + message;
}

/**
 * String literals ('…' with '' inside, E'…' with backslash escapes, $tag$…$tag$)
 * and the ` - ` that stand outside literals, quoted identifiers and comments.
 * Scanning stops at a quote that never closes: the message that follows
 * (`can't …`) is no statement.
 */
function scan(text: string): { literals: Literal[]; separators: number[] } {
  const literals: Literal[] = [];
  const separators: number[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "'") {
      const escapes = /[eE]/.test(text[i - 1] ?? "") && !/[\w$]/.test(text[i - 2] ?? "");
      const start = escapes ? i - 1 : i;
      const end = closingQuote(text, i + 1, escapes);
      if (end === -1) break;
      const body = text.slice(i + 1, end - 1);
      const value = escapes ? body.replace(/\\(.)/g, "$1") : body.replaceAll("''", "'");
      literals.push({ start, end, value, raw: body });
      i = end;
    } else if (c === '"') {
      const end = text.indexOf('"', i + 1);
      if (end === -1) break;
      i = end + 1;
    } else if (c === "$") {
      const tag = /^\$(?:[A-Za-z_][\w]*)?\$/.exec(text.slice(i))?.[0];
      const end = tag && !/[\w$]/.test(text[i - 1] ?? "") ? text.indexOf(tag, i + tag.length) : -1;
      if (!tag || end === -1) {
        i++;
        continue;
      }
      const body = text.slice(i + tag.length, end);
      literals.push({ start: i, end: end + tag.length, value: body, raw: body });
      i = end + tag.length;
    } else if (c === "-" && text[i + 1] === "-") {
      const end = text.indexOf("\n", i);
      if (end === -1) break;
      i = end + 1;
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      if (end === -1) break;
      i = end + 2;
    } else {
      if (c === " " && text[i + 1] === "-" && text[i + 2] === " ") separators.push(i);
      i++;
    }
  }
  return { literals, separators };
}

/** The index just past the quote that closes a literal whose body starts at `from`; -1 if none. */
function closingQuote(text: string, from: number, escapes: boolean): number {
  for (let i = from; i < text.length; i++) {
    if (escapes && text[i] === "\\") i++;
    else if (text[i] === "'") {
      if (text[i + 1] === "'") i++;
      else return i + 1;
    }
  }
  return -1;
}

/** Masks `value` where PostgreSQL's message quotes it: inside "…", '…' or (…), or as an item of a list. */
function maskEchoes(message: string, value: string): string {
  let out = "";
  let from = 0;
  for (let at = message.indexOf(value); at !== -1; at = message.indexOf(value, at + 1)) {
    const end = at + value.length;
    if (at < from || !quotedAt(message, at, end)) continue;
    out += `${message.slice(from, at)}***`;
    from = end;
  }
  return out + message.slice(from);
}

function quotedAt(text: string, start: number, end: number): boolean {
  const before = text[start - 1];
  const after = text[end];
  const left = before === '"' || before === "'" || before === "(" || (before === " " && text[start - 2] === ",");
  const right = after === '"' || after === "'" || after === ")" || after === ",";
  return left && right;
}
