// Bench migration 9 of 10: creates guardians with an index.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("guardians", (t) => {
    t.increments("id").primary();
    t.integer("student_id");
    t.string("full_name");
    t.string("phone");
    t.timestamp("created_at").notNullable().defaultTo(knex.fn.now());
    t.index(["student_id"], "guardians_student_id_idx");
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("guardians");
}
