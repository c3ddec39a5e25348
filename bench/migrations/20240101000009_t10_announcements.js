// Bench migration 10 of 10: creates announcements with an index.
/** @param {import("knex").Knex} knex */
export async function up(knex) {
  await knex.schema.createTable("announcements", (t) => {
    t.increments("id").primary();
    t.string("headline");
    t.text("body");
    t.timestamp("published_at");
    t.timestamp("created_at").notNullable().defaultTo(knex.fn.now());
    t.index(["published_at"], "announcements_published_at_idx");
  });
}

/** @param {import("knex").Knex} knex */
export async function down(knex) {
  await knex.schema.dropTable("announcements");
}
