// Bench migration 7 of 10: creates attendance with an index.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("attendance", (t) => {
    t.increments("id").primary();
    t.integer("student_id");
    t.date("day");
    t.string("status");
    t.timestamp("created_at").notNullable().defaultTo(knex.fn.now());
    t.index(["day"], "attendance_day_idx");
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("attendance");
}
