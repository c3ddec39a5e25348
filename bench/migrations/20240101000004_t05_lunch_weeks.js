// Bench migration 5 of 10: creates lunch_weeks with an index.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("lunch_weeks", (t) => {
    t.increments("id").primary();
    t.date("week_of");
    t.boolean("published");
    t.text("notes");
    t.timestamp("created_at").notNullable().defaultTo(knex.fn.now());
    t.index(["week_of"], "lunch_weeks_week_of_idx");
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("lunch_weeks");
}
