// Bench migration 4 of 10: creates enrollments with an index.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("enrollments", (t) => {
    t.increments("id").primary();
    t.integer("student_id");
    t.integer("class_id");
    t.date("enrolled_on");
    t.timestamp("created_at").notNullable().defaultTo(knex.fn.now());
    t.index(["student_id"], "enrollments_student_id_idx");
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("enrollments");
}
