// The sample school app: each school publishes its lunch menu week by week.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("lunch_week", (t) => {
    t.increments("lunch_week_id").primary();
    t.date("week_of").notNullable().unique();
    t.boolean("is_published").notNullable().defaultTo(false);
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("lunch_week");
}
