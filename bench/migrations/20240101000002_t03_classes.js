// Bench migration 3 of 10: creates classes with an index.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("classes", (t) => {
    t.increments("id").primary();
    t.string("title");
    t.integer("grade");
    t.integer("room");
    t.timestamp("created_at").notNullable().defaultTo(knex.fn.now());
    t.index(["grade"], "classes_grade_idx");
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("classes");
}
