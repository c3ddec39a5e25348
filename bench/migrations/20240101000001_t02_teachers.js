// Bench migration 2 of 10: creates teachers with an index.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("teachers", (t) => {
    t.increments("id").primary();
    t.string("full_name");
    t.string("email");
    t.boolean("active");
    t.timestamp("created_at").notNullable().defaultTo(knex.fn.now());
    t.index(["email"], "teachers_email_idx");
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("teachers");
}
