import type { Command } from "commander";
import { addTenant, listTenants } from "../../index.js";
import { alignColumns, summaryLine, tenantLine } from "../output.js";
import { runAction } from "../run.js";
import { safe } from "../safe.js";

export function registerTenants(program: Command): void {
  const tenants = program.command("tenants").description("the catalog's schools");

  tenants
    .command("list")
    .description("catalog rows, with whether each database exists")
    .option("--json", "print one JSON document on stdout")
    .action(async (flags: { json?: boolean }, command: Command) => {
      await runAction(command, async (config, { output }) => {
        const list = await listTenants({ config });
        if (flags.json) {
          output.document({ tenants: list });
          return 0;
        }
        if (list.length === 0) output.note(`${output.err.yellow("warning")}: the catalog has no schools`);
        const rows = list.map((t) => [
          safe(t.id),
          safe(t.database),
          safe(t.name),
          t.server === null ? "(catalog's)" : safe(t.server),
          t.exists === null ? `unknown: ${safe(t.problem ?? "server not reachable")}` : t.exists ? "yes" : "no",
        ]);
        for (const line of alignColumns([["ID", "DATABASE", "NAME", "SERVER", "EXISTS"], ...rows])) output.line(line);
        output.line(`${list.length} tenant${list.length === 1 ? "" : "s"}`);
        return 0;
      });
    });

  tenants
    .command("add")
    .argument("<name>", 'the school\'s name, e.g. "Lincoln High"')
    .option("--database <db>", "database name (default: derived from the name, e.g. lincoln_high)")
    .option("--server <name>", "a server named in TENANT_SERVERS (default: the catalog's server)")
    .option("--provision", "create and migrate its database now")
    .option("--adopt", "with --provision: accept an existing database that tenant-migrate did not make")
    .option("--json", "print one JSON document on stdout")
    .description("insert a catalog row")
    .action(
      async (
        name: string,
        flags: {
          database?: string;
          server?: string;
          provision?: boolean;
          adopt?: boolean;
          json?: boolean;
        },
        command: Command,
      ) => {
        await runAction(command, async (config, { output }) => {
          const result = await addTenant({
            config,
            name,
            database: flags.database,
            server: flags.server,
            provision: flags.provision === true,
            adopt: flags.adopt === true,
          });
          if (flags.json) output.document(result);
          const t = result.tenant;
          output.line(
            `added school ${safe(t.id)}: ${safe(t.name)} (database ${safe(t.database)}${t.server ? `, server ${safe(t.server)}` : ""})`,
          );
          if (result.provision) {
            for (const r of result.provision.tenants) output.line(tenantLine(output, r, false));
            output.line(summaryLine(output, result.provision));
            const failed = result.provision.tenants.some((r) => r.result === "failed");
            if (failed) output.line(`rerun: tenant-migrate provision ${safe(t.id)}`);
            return result.provision.ok ? 0 : 1;
          }
          return 0;
        });
      },
    );
}
