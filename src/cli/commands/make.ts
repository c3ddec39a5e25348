import { type Command, Option } from "commander";
import { type MigrationExtension, makeMigration } from "../../index.js";
import { runAction } from "../run.js";

export function registerMake(program: Command): void {
  program
    .command("make")
    .argument("<name>", "what the migration does, e.g. add_menu")
    .option("--catalog", "a catalog migration instead of an app migration")
    .addOption(
      new Option("--ext <ext>", "file type (default: what the folder mostly holds, else js)").choices([
        "js",
        "cjs",
        "mjs",
        "ts",
      ]),
    )
    .description("write a new timestamped migration file")
    .action(async (name: string, flags: { catalog?: boolean; ext?: MigrationExtension }, command: Command) => {
      // make touches no database, so it never starts the embedded server.
      await runAction(
        command,
        async (config, { output }) => {
          const { file } = makeMigration({
            config,
            name,
            catalog: flags.catalog === true,
            extension: flags.ext,
          });
          output.line(`created ${file}`);
          return 0;
        },
        { needsServer: false },
      );
    });
}
