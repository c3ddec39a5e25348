// Bench migration 1 of 10: creates students with an index.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("students", (t) => {
    t.increments("id").primary();
    t.string("first_name");
    t.string("last_name");
    t.date("birth_date");
    t.timestamp("created_at").notNullable().defaultTo(knex.fn.now());
    t.index(["last_name"], "students_last_name_idx");
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("students");
}
