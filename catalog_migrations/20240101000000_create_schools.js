// The catalog of the original design: one row per school, naming its database.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("schools", (t) => {
    t.increments("school_id").primary();
    t.text("school_name").notNullable();
    t.text("school_database").notNullable().unique();
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("schools");
}
