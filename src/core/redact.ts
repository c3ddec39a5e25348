// Passwords never reach any output: every string the tool prints, stores in
// history or puts in an error goes through redact().
const secrets = new Set<string>();

/** Registers a secret to mask wherever it appears (passwords of 4+ characters; shorter would mask ids and words). */
export function addSecret(secret: string | undefined): void {
  if (secret && secret.length >= 4) secrets.add(secret);
}

const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)([^@/\s]*)@/gi;

export function redact(text: string): string {
  let out = text.replace(URL_PASSWORD, "$1***@");
  for (const secret of secrets) {
    if (out.includes(secret)) out = out.split(secret).join("***");
  }
  return out;
}
