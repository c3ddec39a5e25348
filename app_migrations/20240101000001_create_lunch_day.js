/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("lunch_day", (t) => {
    t.increments("lunch_day_id").primary();
    t.integer("lunch_week_id").notNullable().references("lunch_week.lunch_week_id").onDelete("CASCADE");
    t.text("day_of_week").notNullable();
    t.text("menu_details");
    t.unique(["lunch_week_id", "day_of_week"]);
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("lunch_day");
}
