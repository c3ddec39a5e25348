// Passwords never reach any output: every string the tool prints, stores in
// history or puts in an error goes through redact().
const secrets = new Set<string>();

/** Registers a secret to mask wherever it appears (passwords of 4+ characters; shorter would mask ids and words). */
export function addSecret(secret: string | undefined): void {
  if (secret && secret.length >= 4) secrets.add(secret);
}

const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)([^@/\s]*)@/gi;
/** libpq's keyword/value form and URL query parameters: password=…, whatever the value. */
const KEYWORD_PASSWORD = /(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&;,'")]+)/gi;

/**
 * Masks credentials where they occur: the password of a URL, a `password=`
 * value, and every known password where it stands as a whole token. Other
 * text is never altered: with the password `lunch`, `create_lunch_week.js`
 * and `adv_lunch1` stay as they are, while `password: lunch` is masked.
 */
export function redact(text: string): string {
  let out = text.replace(URL_PASSWORD, "$1***@").replace(KEYWORD_PASSWORD, "$1***");
  // Longest first: a password that contains another is masked whole.
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (out.includes(secret)) out = maskTokens(out, secret);
  }
  return out;
}

/** Replaces each occurrence of `value` in `text` that is a whole token (see isWholeToken) with `mask`. */
export function maskTokens(text: string, value: string, mask = "***"): string {
  let out = "";
  let from = 0;
  for (let at = text.indexOf(value); at !== -1; at = text.indexOf(value, at + 1)) {
    if (at < from || !isWholeToken(text, at, at + value.length)) continue;
    out += text.slice(from, at) + mask;
    from = at + value.length;
  }
  return out + text.slice(from);
}

const WORD = /^[\p{L}\p{N}_$]$/u;
/** Joiners: `.` and `-` glue words into one token (`lunch.js`, `db.lunch.example`, `lunch-menu`). */
const JOINER = /^[.-]$/;

const isWord = (c: string | undefined) => c !== undefined && WORD.test(c);
const isJoiner = (c: string | undefined) => c !== undefined && JOINER.test(c);

/**
 * Whether text[start, end) stands as a token of its own: not glued to a word
 * character before or after it (directly, or through a `.` or `-` that a
 * word character follows). An edge of the value that is punctuation itself
 * (`p@ss!`) is a boundary, as for a regular expression's \b.
 */
export function isWholeToken(text: string, start: number, end: number): boolean {
  return !glued(text[start], text[start - 1], text[start - 2]) && !glued(text[end - 1], text[end], text[end + 1]);
}

/** Whether `edge` (a character of the value) is glued to `next`, with `beyond` past it. */
function glued(edge: string | undefined, next: string | undefined, beyond: string | undefined): boolean {
  if (!isWord(edge) && !isJoiner(edge)) return false;
  if (isWord(next)) return true;
  return isJoiner(next) && isWord(edge) && isWord(beyond);
}
