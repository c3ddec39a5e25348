// Bench migration 6 of 10: creates menu_items with an index.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("menu_items", (t) => {
    t.increments("id").primary();
    t.integer("lunch_week_id");
    t.string("dish");
    t.integer("calories");
    t.timestamp("created_at").notNullable().defaultTo(knex.fn.now());
    t.index(["lunch_week_id"], "menu_items_lunch_week_id_idx");
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("menu_items");
}
