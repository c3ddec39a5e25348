// Bench migration 8 of 10: creates grades with an index.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("grades", (t) => {
    t.increments("id").primary();
    t.integer("student_id");
    t.integer("class_id");
    t.decimal("score");
    t.timestamp("created_at").notNullable().defaultTo(knex.fn.now());
    t.index(["class_id"], "grades_class_id_idx");
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("grades");
}
