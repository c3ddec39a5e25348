// Menu items replace the free-text menu_details of each day.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("menu_item", (t) => {
    t.increments("menu_item_id").primary();
    t.integer("lunch_day_id").notNullable().references("lunch_day.lunch_day_id").onDelete("CASCADE");
    t.text("name").notNullable();
    t.text("allergens");
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("menu_item");
}
