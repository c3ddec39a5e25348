// redact() and the statement-literal masking, on their own: what is masked and,
// as much, what is left exactly as it was.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeError } from "../../src/core/errors.ts";
import { addSecret, redact } from "../../src/core/redact.ts";
import { withoutStatementLiterals } from "../../src/core/sql-literals.ts";

addSecret("lunch");
addSecret("p@ss:w0rd!");
addSecret("lunch-box-2024");

describe("redact", () => {
  it("never alters text where a password is only part of a token", () => {
    for (const text of [
      "20240101000000_create_lunch_week.js",
      "adv_lunch1",
      "lunchroom",
      "school_lunch",
      "lunch.js",
      "db.lunch.example.org",
      "lunch-menu",
      "pre-lunch",
      "$lunch",
      "Lunch",
      "✔ t1_lunch_a (id 1) migrated: 20240101000000_create_lunch_week.js (12 ms)",
    ]) {
      assert.equal(redact(text), text);
    }
  });

  it("masks a known password where it stands as a whole value", () => {
    assert.equal(redact("lunch"), "***");
    assert.equal(redact("password=lunch"), "password=***");
    assert.equal(redact("the password is lunch."), "the password is ***.");
    assert.equal(
      redact("password 'lunch' and \"lunch\" and (lunch), lunch;"),
      "password '***' and \"***\" and (***), ***;",
    );
    assert.equal(redact("user: lunch-box-2024"), "user: ***", "the longer password whole, not the shorter inside it");
  });

  it("masks a password with punctuation where it stands as a whole value", () => {
    assert.equal(redact("password: p@ss:w0rd!"), "password: ***");
    assert.equal(redact("pw=p@ss:w0rd! next"), "pw=*** next");
    assert.equal(redact("'p@ss:w0rd!'"), "'***'");
    assert.equal(redact("xp@ss:w0rd!"), "xp@ss:w0rd!", "glued to a word before it: another value");
  });

  it("masks the password of any URL and of a password= setting, known or not", () => {
    assert.equal(redact("postgres://app:unknown%40pw@db:5432/catalog"), "postgres://app:***@db:5432/catalog");
    assert.equal(redact("connect: host=db password=s3cr3t user=app"), "connect: host=db password=*** user=app");
    assert.equal(redact("https://x/?user=a&password=s3cr3t&b=1"), "https://x/?user=a&password=***&b=1");
    assert.equal(redact("password='with space' user=x"), "password=*** user=x");
    assert.equal(redact("the password was wrong"), "the password was wrong");
  });
});

describe("a failed statement's literal values", () => {
  it("are masked in the statement and where PostgreSQL's message repeats them", () => {
    assert.equal(
      withoutStatementLiterals(`create role app password 'S3cret' - role "app" already exists`),
      `create role app password '***' - role "app" already exists`,
    );
    assert.equal(
      withoutStatementLiterals(`select 'S3cret'::int - invalid input syntax for type integer: "S3cret"`),
      `select '***'::int - invalid input syntax for type integer: "***"`,
    );
    assert.equal(
      withoutStatementLiterals(
        `insert into users (id, email) values (1, 'bob@example.com') - duplicate key value violates unique constraint "users_email" (SQLSTATE 23505); detail: Key (email)=(bob@example.com) already exists.`,
      ),
      `insert into users (id, email) values (1, '***') - duplicate key value violates unique constraint "users_email" (SQLSTATE 23505); detail: Key (email)=(***) already exists.`,
    );
    assert.equal(
      withoutStatementLiterals(`alter role x password E'it\\'s' - syntax error at or near "'it\\'s'"`),
      `alter role x password '***' - syntax error at or near "'***'"`,
    );
    assert.equal(
      withoutStatementLiterals(`do $body$ begin perform 'S3cret'; end $body$ - syntax error`),
      `do '***' - syntax error`,
    );
    assert.equal(
      withoutStatementLiterals(`select 'a - b', 'it''s' - column "x" does not exist`),
      `select '***', '***' - column "x" does not exist`,
    );
  });

  it("leave every other text as it is", () => {
    for (const text of [
      `create unique index one_week on lunch_week (is_published) where is_published - could not create unique index "one_week" (SQLSTATE 23505); detail: Key (is_published)=(t) is duplicated.`,
      `cannot connect to 'db' - the server said no`,
      `migration 'x.js' - can't load`,
      `relation "lunch_week" already exists (SQLSTATE 42P07)`,
      `insert into t values (1) - no literal here`,
    ]) {
      assert.equal(withoutStatementLiterals(text), text);
    }
  });

  it("describeError masks them in a knex query error, detail included", () => {
    const error = Object.assign(
      new Error(`insert into secrets (v) values ('S3cret') - value too long for type character varying(3)`),
      { code: "22001", detail: `Failing row contains (S3cret).` },
    );
    const text = describeError(error);
    assert.ok(!text.includes("S3cret"), text);
    assert.match(
      text,
      /value too long for type character varying\(3\) \(SQLSTATE 22001\); detail: Failing row contains \(\*\*\*\)\./,
    );
  });
});
